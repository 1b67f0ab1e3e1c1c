"""Every environment variable judgeloop reads or sets, in one place.

judgeloop never reaches a model hub: models are local directories. The inference stack's own
variables get defaults suited to CPU machines; a value already set in the environment always wins,
and on GPU machines the CPU-only variables are simply ignored by vLLM.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

__all__ = ["CACHE_FILE", "apply_runtime_defaults", "cache_dir", "configure_logging", "cpu_bind", "temporary_env"]

#: A file in a virtualenv's root (``sys.prefix``) naming the cache that environment's setup used;
#: ``make`` writes it, so ``.venv/bin/judgeloop`` finds the model ``make demo`` prepared.
CACHE_FILE = "judgeloop-cache"

# Libraries whose INFO logs (engine start-up, weight loading, Ray start) are noise to a user.
_THIRD_PARTY = ("vllm", "ray", "transformers", "torch", "datasets", "accelerate", "peft", "trl", "httpx", "urllib3")


@contextmanager
def temporary_env(values: Mapping[str, str]) -> Iterator[None]:
    """Set the variables of ``values`` for the block only, then put back what was there (or nothing)."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in previous.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def cache_dir() -> Path:
    """Where prepared models and downloads live.

    ``JUDGELOOP_CACHE`` when set; else the location recorded in this environment's
    ``sys.prefix``/:data:`CACHE_FILE` (written by ``make``); else ``~/.cache/judgeloop``.
    """
    env = os.environ.get("JUDGELOOP_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    recorded = Path(sys.prefix) / CACHE_FILE
    try:
        text = recorded.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    if text:
        # A relative path in the file is relative to the environment, not to the current directory.
        return (Path(sys.prefix) / Path(text).expanduser()).resolve()
    return (Path.home() / ".cache" / "judgeloop").resolve()


def configure_logging(verbose: bool = False) -> None:
    """Third-party logs at WARNING (INFO with ``verbose``), and every log line on stderr.

    Sets the engines' own variables (read when they are imported, also by their worker processes)
    unless the user set them, and the Python loggers of libraries already imported.
    """
    level = "INFO" if verbose else "WARNING"
    for key, value in {
        "VLLM_LOGGING_LEVEL": level,
        # vLLM logs to stdout by default, which would corrupt `--json` output.
        "VLLM_LOGGING_STREAM": "ext://sys.stderr",
        "TRANSFORMERS_VERBOSITY": level.lower(),
        "DATASETS_VERBOSITY": level.lower(),
        # ray.init resets the "ray" logger to this level (default info: "Started a local Ray instance").
        "RAY_LOGGER_LEVEL": level.lower(),
    }.items():
        os.environ.setdefault(key, value)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in _THIRD_PARTY:
        logging.getLogger(name).setLevel(getattr(logging, level))
    logging.captureWarnings(True)  # Python warnings become log records, on stderr


def cpu_bind(cores: list[int] | None = None) -> str:
    """An OpenMP binding string covering the given cores (default: every core this process may use)."""
    if cores is None:
        try:
            cores = sorted(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = list(range(os.cpu_count() or 1))
    if cores == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}" if len(cores) > 1 else str(cores[0])
    return ",".join(str(c) for c in cores)


def apply_runtime_defaults() -> None:
    """Set offline mode and CPU-friendly inference defaults, unless already set."""
    defaults = {
        # No hub is reachable: fail fast instead of retrying network calls.
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "TOKENIZERS_PARALLELISM": "false",
        # Quiet engines by default (the CLI's --verbose sets INFO first), and never log to stdout.
        "VLLM_LOGGING_LEVEL": "WARNING",
        "VLLM_LOGGING_STREAM": "ext://sys.stderr",
        # Unset, vLLM-CPU reserves ~12 GiB of KV cache; a judge with short prompts needs far less.
        "VLLM_CPU_KVCACHE_SPACE": "2",
        # The default "auto" leaves a core idle; bind to every core we may use.
        "VLLM_CPU_OMP_THREADS_BIND": cpu_bind(),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
