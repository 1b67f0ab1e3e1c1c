"""The judge worker: a Ray actor that owns one backend, created inside the actor.

The class is plain Python; the pool wraps it with ``ray.remote`` (so importing it needs no Ray).
Ray restarts a dead worker by running ``__init__`` again with the same arguments: the backend is
recreated on the same slot (same cores) and the model check runs again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from judge.core._errors import ClusterError
from judge.backends._base import Completion, Prompt
from judge.core._records import SamplingParams


def slot_cores(slot: int, cores_per_worker: int, cores: list[int]) -> list[int]:
    """The cores of the ``slot``-th worker on a node whose usable cores are ``cores``."""
    n = len(cores)
    return [cores[(slot * cores_per_worker + j) % n] for j in range(min(cores_per_worker, n))]


class JudgeWorker:
    """Owns one backend and judges batches of prompts.

    Args:
        name: the worker's name in statistics (``w0``, ``w1`` ...).
        backend: backend name (``vllm``, ``hf``, ``openai``, ``scripted`` ...).
        model: the model path (already resolved by the driver) or served name.
        options: backend options from the job's ``judge.options``.
        check_model: fail at creation if ``model`` is not a directory on this node.
        slot: this worker's rank among the workers on its node.
        cores_per_worker: cores to bind this worker's threads to on CPU, or 0 to leave them unbound
            (GPU workers).
    """

    def __init__(
        self,
        name: str,
        backend: str,
        model: str,
        options: dict[str, Any],
        check_model: bool,
        slot: int,
        cores_per_worker: int,
    ) -> None:
        import ray

        from judge.core._env import apply_runtime_defaults, cpu_bind
        from judge.backends import create_backend

        t0 = time.perf_counter()
        self.name = name
        self.node = ray.util.get_node_ip_address()
        if check_model and not (Path(model) / "config.json").is_file():
            raise ClusterError(
                f"worker {name} on node {self.node}: the judge model directory {model} is missing. Every node "
                "must see the model at the same path (shared filesystem or the same image)."
            )
        self.cores: list[int] = []
        if cores_per_worker > 0 and hasattr(os, "sched_getaffinity"):
            self.cores = slot_cores(slot, cores_per_worker, sorted(os.sched_getaffinity(0)))
            # Each worker binds to its own cores: vLLM-CPU's OpenMP threads through its variable
            # (the inherited value would bind every worker to every core), torch through affinity.
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cpu_bind(self.cores)
            os.environ["OMP_NUM_THREADS"] = str(len(self.cores))
            os.sched_setaffinity(0, self.cores)
        apply_runtime_defaults()
        self.backend = create_backend(backend, model=model, **options)
        self.info = self.backend.info()
        self.load_s = time.perf_counter() - t0
        self.restarted = bool(ray.get_runtime_context().was_current_actor_reconstructed)
        self.pid = os.getpid()

    def ready(self) -> dict[str, Any]:
        """Who this worker is; returns once the backend has loaded."""
        return {
            "name": self.name,
            "node": self.node,
            "pid": self.pid,
            "cores": self.cores,
            "load_s": round(self.load_s, 3),
            "restarted": self.restarted,
            "info": self.info,
        }

    def generate(self, prompts: list[Prompt], params: list[SamplingParams]) -> tuple[list[Completion], float]:
        """Complete one batch; returns the completions and the seconds the backend took.

        A request the backend fails on comes back as a failed completion (``error_kind: backend``):
        the batch's other requests are kept, and the driver writes the failure without retrying
        the batch elsewhere (it would fail there too).
        """
        from judge.backends import generate_each

        t0 = time.perf_counter()
        completions = generate_each(self.backend, prompts, params)
        return completions, time.perf_counter() - t0

    def close(self) -> None:
        """Release the backend (its engine processes) before the actor is killed."""
        self.backend.close()
