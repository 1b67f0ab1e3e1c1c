"""The Ray pool on the bundled model: two vLLM workers give the single-process engine's results,
also when a worker is killed mid-job.
"""

from __future__ import annotations

import json

import pytest
from cluster_helpers import N_ITEMS, describe_difference, job_dict, judgment_set

from cluster import JudgePool, connect, run_cluster_job
from judge.core._config import JobConfig

pytestmark = [pytest.mark.ray, pytest.mark.vllm, pytest.mark.model, pytest.mark.slow]


def _cfg(items, tmp_path) -> JobConfig:
    return JobConfig.model_validate(job_dict(items, tmp_path / "out" / "judgments.jsonl", cluster=True))


@pytest.fixture(scope="module")
def pool(ray_local, items, reference, tmp_path_factory):
    # `reference` first: its engine is closed before the two workers load theirs.
    cfg = _cfg(items, tmp_path_factory.mktemp("pool"))
    p = JudgePool(cfg, connect(cfg.cluster))
    p.start()
    yield p
    p.close()


def test_pool_results_equal_the_single_process_engine(pool, items, reference, tmp_path):
    cfg = _cfg(items, tmp_path)
    summary = run_cluster_job(cfg, progress=False, pool=pool)
    got = judgment_set(cfg.output)
    assert got == reference, describe_difference(got, reference)
    workers = [w.model_dump() for w in summary.executor.workers]
    assert sum(w["judgments"] for w in workers) == N_ITEMS
    if summary.executor.failures == 0:  # (a shared machine's memory pressure may kill a worker)
        assert all(w["judgments"] > 0 for w in workers), workers  # both workers judged
    assert summary.judge.backend == "vllm" and summary.judge.dtype == "float32"


def test_killed_worker_is_retried_and_every_item_judged_once(pool, ray_local, items, reference, tmp_path):
    cfg = _cfg(items, tmp_path)
    killed = []

    def kill_a_busy_worker(n_batches: int) -> None:
        busy = [i for i, w in enumerate(pool.status()) if w["available"] and w["inflight"] > 0]
        if busy and not killed:
            ray_local.kill(pool.actors[busy[0]], no_restart=False)  # Ray restarts it (max_restarts=2)
            killed.append(busy[0])

    summary = run_cluster_job(cfg, progress=False, on_batch=kill_a_busy_worker, pool=pool)
    keys = [json.loads(line)["key"] for line in cfg.output.read_text().splitlines()]
    assert killed and len(keys) == len(set(keys)) == N_ITEMS
    assert summary.executor.failures >= 1 and summary.executor.retries >= 1, summary.executor
    assert summary.executor.workers[killed[0]].failures >= 1
    got = judgment_set(cfg.output)
    assert got == reference, describe_difference(got, reference)
