"""``run_cluster_job``: the engine's job, with batches judged on a Ray pool."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from cluster._pool import JudgePool
from cluster._runtime import connect
from judge.core._config import JobConfig
from judge.runner import BatchResult, JobSummary
from judge.core._records import JudgeRequest

__all__ = ["run_cluster_job"]


class _Borrowed:
    """A pool lent to one job: the job's end does not stop its workers."""

    def __init__(self, pool: JudgePool) -> None:
        self._pool = pool
        pool.reset_stats()

    def run(self, batches: Iterator[list[JudgeRequest]]) -> Iterator[BatchResult]:
        return self._pool.run(batches)

    def stats(self) -> dict[str, Any]:
        return self._pool.stats()

    def postfix(self) -> str:
        return self._pool.postfix()

    def close(self) -> None:
        pass


def run_cluster_job(
    cfg: JobConfig,
    progress: bool = True,
    *,
    on_batch: Callable[[int], None] | None = None,
    pool: JudgePool | None = None,
) -> JobSummary:
    """Run a judging job on a pool of Ray judge actors; the same files and summary as ``run_job``.

    Connects as ``cfg.cluster.address`` says (None: a private local Ray, stopped at the end), checks
    that the cluster can hold the workers, and judges. Everything about judging (requests, cache,
    output files, resume) is the engine's; this only supplies where batches run.

    Args:
        cfg: the job; ``cfg.cluster`` sizes the pool.
        progress: show a progress bar (with per-worker statistics) on stderr.
        on_batch: passed to :func:`judge.runner._engine.run_job`.
        pool: an already started pool to use (it is left running), e.g. shared by several jobs.
    """
    from judge.runner._engine import job_judge_id, run_job
    from judge.inputs._data import check_dataset
    from judge.inputs._rubric import resolve_rubric

    # Every config error surfaces before Ray starts.
    for r in cfg.rubrics:
        resolve_rubric(r)
    check_dataset(cfg.data)  # missing, or a format no reader knows (a directory saved by datasets is one)
    judge_id = job_judge_id(cfg)
    if pool is not None:
        return run_job(cfg, progress=progress, on_batch=on_batch, executor=_Borrowed(pool), judge_id=judge_id)
    conn = connect(cfg.cluster)
    own: JudgePool | None = None
    try:
        own = JudgePool(cfg, conn)
        return run_job(cfg, progress=progress, on_batch=on_batch, executor=own, judge_id=judge_id)
    finally:
        if own is not None:
            own.close()
        conn.close()
