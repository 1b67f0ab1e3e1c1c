"""The pool's bookkeeping: a batch and its attempts, and one worker slot with its statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from judge.core._records import JudgeRequest

__all__ = ["Task", "WorkerSlot", "error_text", "worker_options"]


@dataclass
class Task:
    batch: list[JudgeRequest]
    attempts: int = 0


@dataclass
class WorkerSlot:
    name: str
    index: int
    actor: Any = None
    node: str = ""
    info: Any = None
    cores: list[int] = field(default_factory=list)
    available: bool = False
    dead: bool = False
    down_since: float = 0.0
    inflight: int = 0
    batches: int = 0
    judgments: int = 0
    busy_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: int = 0
    restarts: int = 0
    load_s: float = 0.0
    last_error: str = ""

    def stats(self) -> dict[str, Any]:
        busy = self.busy_s
        return {
            "name": self.name,
            "node": self.node,
            "cores": self.cores,
            "batches": self.batches,
            "judgments": self.judgments,
            "busy_s": round(busy, 3),
            "judgments_per_s": round(self.judgments / busy, 3) if busy > 0 else 0.0,
            "prompt_tokens_per_s": round(self.prompt_tokens / busy, 1) if busy > 0 else 0.0,
            "completion_tokens_per_s": round(self.completion_tokens / busy, 1) if busy > 0 else 0.0,
            "failures": self.failures,
            "restarts": self.restarts,
            "load_s": round(self.load_s, 3),
            "alive": not self.dead,
        }


def worker_options(backend: str, options: dict[str, Any], tensor_parallel: int) -> dict[str, Any]:
    """The backend options a worker is created with: the job's, plus what its placement needs.

    A tensor-parallel vLLM engine inside a worker starts its ranks as Ray actors in the worker's
    placement group (the worker itself reserves no GPU, so vLLM's own choice, which counts the GPUs
    visible to the worker, would refuse).
    """
    out = dict(options)
    if backend == "vllm" and tensor_parallel > 1:
        out.setdefault("distributed_executor_backend", "ray")
    return out


def error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    # Ray's messages carry the remote traceback; the last line names the actual error.
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(exc).__name__
