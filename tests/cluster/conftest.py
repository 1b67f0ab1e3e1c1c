"""Fixtures for the Ray tests: one private local Ray per module, and data made here."""

from __future__ import annotations

import os
from pathlib import Path

# Read when Ray is imported: keep the private test cluster on the loopback interface.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray's memory monitor counts every process on the machine; on a shared test machine it would kill
# judge workers at its default 95% while other jobs hold the memory. (The pool survives such kills,
# but each one costs an engine restart.)
os.environ.setdefault("RAY_memory_usage_threshold", "0.98")

import pytest  # noqa: E402
from cluster_helpers import N_ITEMS, job_dict, judgment_set, write_items  # noqa: E402


@pytest.fixture(scope="module")
def ray_local(request):
    """A private local Ray with one CPU per worker plus one for the driver's tasks."""
    import ray

    # Scripted responders defined in a test module travel to the actors by value: the workers
    # cannot import test modules.
    ray.cloudpickle.register_pickle_by_value(request.module)
    from cluster._runtime import start_local_ray

    start_local_ray(num_cpus=3)
    yield ray
    ray.shutdown()


# ----------------------------------------------------------------------------------------------
# The bundled model: the same items judged once in a single process, as the reference


@pytest.fixture(scope="session")
def items(tmp_path_factory) -> Path:
    return write_items(tmp_path_factory.mktemp("items") / "items.jsonl", N_ITEMS)


@pytest.fixture(scope="session")
def reference(items, vllm_float32, tmp_path_factory) -> set[tuple]:
    """Judgments of ``items`` by the single-process engine: the session's float32 engine, which has
    the workers' judge identity (backend, model, dtype) and, in float32, their results whatever its
    context length and prefix cache. Its cache is emptied first, as a fresh worker's is."""
    from judge.core._config import JobConfig
    from judge.runner._engine import run_job

    out = tmp_path_factory.mktemp("reference") / "judgments.jsonl"
    vllm_float32.llm.reset_prefix_cache()
    cfg = JobConfig.model_validate(job_dict(items, out, cluster=False))
    summary = run_job(cfg, backend=vllm_float32, progress=False)
    assert summary.new_judgments == N_ITEMS
    return judgment_set(out)
