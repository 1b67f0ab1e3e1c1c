"""A judging job: a :class:`~judge.scoring.Judge` run over a dataset file by the resumable runner.

Files of a job whose ``output`` is ``run/judgments.jsonl``:

- ``run/judgments.jsonl.part``: judgments appended (and fsynced) batch by batch while the job runs;
- ``run/judgments.jsonl``: the same file, renamed into place when the job completes;
- ``run/judgments.rejects.jsonl``: input rows that failed validation (line numbers and reasons), and
  requests whose prompt does not fit the judge's context (item id, tokens needed and available);
- ``run/judgments.summary.json``: the end-of-job summary (:class:`JobSummary`);
- ``run/judgments.cache.sqlite``: the output ledger (which request keys the output holds) and, unless
  ``cache_dir`` names a shared one, the judgment cache (see :mod:`judge.runner._cache`).

The steps: validate the judge (rubrics, backend name and options: before any file is touched),
read items (:class:`~judge.inputs.ItemReader`), expand them into requests, look each up in the
ledger (resumed work) and the cache, dispatch the rest through the executor, write, and finish
(statistics, pair verdicts, bias diagnostics) over the whole output. A rerun of a finished job
reports the whole output again (everything resumed), never zeros.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from judge.backends._base import Backend, check_backend
from judge.core._config import JobConfig
from judge.core._errors import ConfigError
from judge.core._io import atomic_write
from judge.inputs._data import check_dataset, count_rows
from judge.inputs._data import ItemReader
from judge.inputs._rubric import resolve_rubric
from judge.runner._cache import JudgmentCache, OutputLedger
from judge.runner._runner import Rejects, RunCounts, Runner, failed_line, progress_bar
from judge.runner._summary import ExecutorStats, JobSummary
from judge.runner._task import Executor, JudgeTask, LocalExecutor
from judge.scoring._judge import Judge

__all__ = ["JobPaths", "job_judge", "job_judge_id", "job_paths", "run_job"]

BackendFactory = Callable[[], Backend]


@dataclass(frozen=True)
class JobPaths:
    output: Path
    part: Path
    rejects: Path
    summary: Path
    cache: Path = Path()


def job_paths(output: Path) -> JobPaths:
    """The files a job writes next to its output."""
    output = Path(output)
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return JobPaths(
        output=output,
        part=output.with_name(output.name + ".part"),
        rejects=output.with_name(stem + ".rejects.jsonl"),
        summary=output.with_name(stem + ".summary.json"),
        cache=output.with_name(stem + ".cache.sqlite"),
    )


def job_judge_id(cfg: JobConfig) -> str:
    """The identity of the configured judge, without loading it."""
    return Judge.from_spec(cfg).judge_id


def job_judge(
    cfg: JobConfig, backend: Backend | BackendFactory | None = None, judge_id: str | None = None
) -> tuple[Judge, LocalExecutor]:
    """The job's judge and an in-process executor for it.

    Args:
        cfg: the job.
        backend: a ready backend, a factory, or None for the configured one (created on the first
            batch, so a job with nothing to do never loads a model).
        judge_id: with a factory, the judge's identity (see :func:`job_judge_id`); without it the
            factory is called at once to ask the backend.
    """
    if backend is None:
        judge = Judge.from_spec(cfg, batch_size=cfg.batch_size)
        return judge, LocalExecutor(judge.backend, owns_backend=False)
    if callable(backend) and not hasattr(backend, "generate"):
        if judge_id is not None:
            judge = Judge.from_spec(cfg, batch_size=cfg.batch_size)
            judge.judge_id = judge_id
            return judge, LocalExecutor(backend)
        made = backend()
        return Judge.from_spec(cfg, made, cfg.batch_size), LocalExecutor(lambda: made)
    ready: Backend = backend  # type: ignore[assignment]
    return Judge.from_spec(cfg, ready, cfg.batch_size), LocalExecutor(lambda: ready, owns_backend=False)


def run_job(
    cfg: JobConfig,
    backend: Backend | BackendFactory | None = None,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
    executor: Executor | None = None,
    judge_id: str | None = None,
) -> JobSummary:
    """Run a judging job to completion (or resume one) and return its summary.

    Args:
        cfg: the job.
        backend: a ready backend, a factory, or None to create the configured one. It is created
            only when there is work to do, so a finished job reruns in seconds.
        progress: show a progress bar on stderr (it counts items).
        on_batch: called with the number of batches written so far (tests use it to crash a job).
        executor: where batches run (default: in this process); ``cluster`` passes a Ray pool.
        judge_id: the judge's identity when an executor or a backend factory is given (see
            :func:`job_judge_id`); with a factory it lets a job with nothing to do skip creating it.

    Raises:
        ConfigError, RubricError: bad rubrics, an unknown backend or options it does not take,
            before any file is read or written.
        DataError: the dataset does not exist.
    """
    t0 = time.perf_counter()
    # Validate first: rubrics, backend name and options fail before the data is read or any file
    # made, and before a backend is created.
    _check_rubrics(cfg)
    if backend is None or executor is not None or judge_id is not None:
        check_backend(cfg.judge.backend, dict(cfg.judge.options))
    check_dataset(cfg.data)  # missing, or a format no reader knows: before any file is made
    if executor is None:
        judge, executor = job_judge(cfg, backend, judge_id)
    else:
        judge = Judge.from_spec(cfg, batch_size=cfg.batch_size)
        if judge_id is not None:
            judge.judge_id = judge_id

    paths = _open_output(cfg)
    ledger = OutputLedger(paths.cache)
    cache = JudgmentCache(Path(cfg.cache_dir) / "judgments.sqlite" if cfg.cache_dir else paths.cache)
    # The output file is the truth; the ledger catches up with it (and refills the cache from it).
    ledger.sync(paths.part, on_lines=lambda lines: cache.put_many(_cacheable(lines)), failed=failed_line)
    rejects = Rejects(paths.rejects)
    rows = count_rows(cfg.data)
    total = min(rows, cfg.limit) if rows is not None and cfg.limit else rows
    bar = progress_bar(total, progress)

    def on_reject(line: int, row: Any, error: str) -> None:
        rejects.row(line, row, error)
        if rows is not None:  # the bar counts valid items: a rejected row leaves its total
            bar.total = min(rows - rejects.rows, cfg.limit or rows)
            bar.refresh()

    # The id index of the duplicate check is a scratch file beside the output (bounded memory).
    reader = ItemReader(
        cfg.data, judge.check, cfg.limit, on_reject, columns=cfg.columns, scratch_dir=paths.output.parent
    )
    runner = Runner(JudgeTask(judge), executor, paths.part, ledger, cache, rejects, cfg.batch_size, bar, on_batch)
    completed = False
    canary = None
    try:
        counts = runner.run(reader)
        if cfg.audit is not None and cfg.audit.canary is not None:
            from judge.audit._job import run_canary  # oversight sits above the runner: imported on use

            canary = run_canary(cfg, paths.output, executor, judge.judge_id, progress=False)
        completed = True
    finally:
        bar.close()
        stats = executor.stats()
        executor.close()
        judge.close()
        ledger.close()
        cache.close()
        if completed:
            rejects.commit()
        else:
            rejects.discard()
    os.replace(paths.part, paths.output)
    summary = _summary(paths, reader, rejects, counts, stats)
    from judge.runner._finish import finish_job

    finish_job(cfg, paths.output, judge.rubrics, summary)  # statistics, pair verdicts file, bias diagnostics
    summary.canary = canary
    if cfg.audit is not None and cfg.audit.budget is not None:
        from judge.audit._job import sample_job

        summary.audit_sample = sample_job(cfg, paths.output)
    summary.wall_s = time.perf_counter() - t0
    atomic_write(paths.summary, summary.to_json())
    return summary


def _check_rubrics(cfg: JobConfig) -> None:
    rubrics = [resolve_rubric(r) for r in cfg.rubrics]
    if len({r.content_hash for r in rubrics}) != len(rubrics):
        raise ConfigError("the same rubric is listed twice in 'rubrics'")


def _open_output(cfg: JobConfig) -> JobPaths:
    """The job's paths, with a finished output reopened for appending (new items may have come)."""
    paths = job_paths(cfg.output)
    paths.output.parent.mkdir(parents=True, exist_ok=True)
    if paths.output.exists() and not paths.part.exists():
        os.replace(paths.output, paths.part)
    return paths


def _cacheable(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, line) for k, line in lines if not failed_line(line)]


def _summary(paths: JobPaths, reader: ItemReader, rejects: Rejects, c: RunCounts, stats: dict[str, Any]) -> JobSummary:
    """This run's part of the summary; :func:`finish_job` adds what the whole output holds."""
    summary = JobSummary(
        output=str(paths.output),
        rows=reader.rows,
        items=reader.items,
        data=reader.report,
        rejected=rejects.rows,
        skipped=c.skipped,
        failed=c.failed,
        new_judgments=c.new,
        resumed=c.resumed,
        cached=c.cached,
        new_prompt_tokens=c.prompt_tokens,
        new_completion_tokens=c.completion_tokens,
        judge_s=c.judge_s,
        judge=c.info,
        executor=ExecutorStats.model_validate(stats) if stats else None,
    )
    if "judge_wall_s" in stats:  # parallel workers: wall time, not the sum of batch times
        summary.judge_s = float(stats["judge_wall_s"])
    return summary
