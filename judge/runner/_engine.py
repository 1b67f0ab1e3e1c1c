"""The batch judging engine: expand, deduplicate, resume, dispatch, write, summarise.

Files of a job whose ``output`` is ``run/judgments.jsonl``:

- ``run/judgments.jsonl.part``: judgments appended (and fsynced) batch by batch while the job runs;
- ``run/judgments.jsonl``: the same file, renamed into place when the job completes;
- ``run/judgments.rejects.jsonl``: input rows that failed validation, with line numbers and reasons;
- ``run/judgments.summary.json``: the end-of-job summary;
- ``run/judgments.cache.sqlite``: the output ledger (which request keys the output holds) and, unless
  ``cache_dir`` names a shared one, the judgment cache (see :mod:`judge.runner._cache`).

Every request has a content address (:func:`request_key`). Before a request is dispatched, the
ledger says whether the output already holds it (resumed work) and the cache whether it was judged
before (its judgment is written without calling the judge). So a killed job rerun with the same
config ends with the same results, no completed request is ever recomputed, and neither the dataset
nor its keys are ever held in memory: only the requests in flight are.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import pydantic

from judge.core._errors import ConfigError, DataError
from judge.core._io import atomic_write
from judge.backends._base import Backend, Completion, create_backend, fingerprint_model_dir
from judge.runner._cache import JudgmentCache, OutputLedger, output_slot
from judge.core._config import JobConfig
from judge.inputs._data import count_rows, iter_rows
from judge.core._records import Item, JudgeInfo, JudgeRequest, Judgment, stable_hash
from judge.inputs._rubric import Rubric, resolve_rubric
from judge.scoring._scoring import build_requests, item_fits, judgment_from

__all__ = ["BatchResult", "Executor", "JobSummary", "LocalExecutor", "job_judge_id", "job_paths", "run_job"]


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


def judge_identity(backend: str, model: str, options: dict[str, Any]) -> str:
    """A fingerprint of the judge that is known before the model loads."""
    p = Path(model)
    model_hash = fingerprint_model_dir(p) if p.is_dir() else stable_hash([model, options.get("base_url")])
    dtype = options.get("dtype")
    if dtype is None:
        # The backend's default dtype, which a created backend reports (JobConfig without dtype and a
        # ready backend passed to run_job must give the same keys, or resume and cache miss).
        import inspect

        from judge.backends._base import _REGISTRY, _import_builtin

        _import_builtin()
        param = inspect.signature(_REGISTRY[backend]).parameters.get("dtype") if backend in _REGISTRY else None
        dtype = param.default if param is not None and isinstance(param.default, str) else ""
    return stable_hash([backend, model_hash, dtype])


# ----------------------------------------------------------------------------------------------
# Files


class _Appender:
    """Appends judgments as JSON lines, durable at every flush."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("ab")

    def write(self, lines: Iterable[str]) -> tuple[int, bytes]:
        """Append lines (without newlines) and fsync; return the file's new size and last line."""
        last = b""
        for line in lines:
            last = line.encode("utf-8") + b"\n"
            self._fh.write(last)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return self._fh.tell(), last

    def close(self) -> None:
        self._fh.close()


class _Rejects:
    """Rejected rows, streamed to a temporary file and renamed into place at the end of the job."""

    def __init__(self, path: Path) -> None:
        for stale in path.parent.glob(path.name + ".tmp*"):  # left by a killed run of this job
            stale.unlink(missing_ok=True)
        self._path = path
        self._tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        self._fh = self._tmp.open("w", encoding="utf-8")
        self._n = 0

    def append(self, reject: dict[str, Any]) -> None:
        self._fh.write(json.dumps(reject, ensure_ascii=False, default=str) + "\n")
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def commit(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self._path)

    def discard(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------
# Summary


@dataclass
class JobSummary:
    """What a job did; printed as a table and written as JSON."""

    output: str
    rows: int = 0
    items: int = 0
    rejected: int = 0
    judgments: int = 0
    new_judgments: int = 0
    resumed: int = 0
    cached: int = 0
    unscored: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    judge_s: float = 0.0
    rubrics: dict[str, Any] = field(default_factory=dict)
    judge: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def judgments_per_s(self) -> float:
        return self.new_judgments / self.judge_s if self.judge_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["judgments_per_s"] = round(self.judgments_per_s, 3)
        d["prompt_tokens_per_s"] = round(self.prompt_tokens / self.judge_s, 1) if self.judge_s > 0 else 0.0
        return d

    def table(self) -> str:
        lines = [
            f"judgments  {self.output}",
            f"  items {self.items}   rejected rows {self.rejected}   judgments {self.judgments} "
            f"(new {self.new_judgments}, resumed {self.resumed}, from cache {self.cached})   "
            f"unscored {self.unscored}",
            f"  tokens: prompt {self.prompt_tokens}, generated {self.completion_tokens}   "
            f"wall {self.wall_s:.1f}s   judge {self.judge_s:.1f}s   {self.judgments_per_s:.2f} judgments/s",
        ]
        lines.extend(_executor_lines(self.extra))
        for rid, r in self.rubrics.items():
            lines.append(f"  rubric {rid}  ({r['mode']}; scored {r['scored']}, unscored {r['unscored']})")
            if r.get("criteria"):
                width = max(len(c) for c in r["criteria"])
                lines.append(f"    {'criterion'.ljust(width)}   mean    n")
                for c, stats in r["criteria"].items():
                    lines.append(f"    {c.ljust(width)}   {stats['mean']:5.2f}  {stats['n']:4d}")
            if r.get("winners"):
                w = r["winners"]
                lines.append("    verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(w.items())))
            from judge.analysis._verdicts import summary_lines

            lines.extend(summary_lines(r))
        return "\n".join(lines)


def _executor_lines(extra: dict[str, Any]) -> list[str]:
    """Per-worker lines for a summary whose executor reported workers (e.g. a Ray pool)."""
    workers = extra.get("workers")
    if not workers:
        return []
    lines = [
        f"  workers {len(workers)}   retries {extra.get('retries', 0)}   failures {extra.get('failures', 0)}   "
        f"max queue depth {extra.get('max_queue_depth', 0)}   start-up {extra.get('startup_s', 0.0):.1f}s   "
        f"cost {extra.get('worker_s_per_1k', 0.0):.1f} worker-s per 1k judgments",
        f"    {'worker':<10} {'node':<16} {'batches':>7} {'judgments':>9} {'busy s':>7} {'judg/s':>7} "
        f"{'prompt tok/s':>12} {'gen tok/s':>9} {'restarts':>8} {'failures':>8}",
    ]
    for w in workers:
        lines.append(
            f"    {w['name']:<10} {str(w.get('node', '')):<16} {w['batches']:>7} {w['judgments']:>9} "
            f"{w['busy_s']:>7.1f} {w['judgments_per_s']:>7.2f} {w['prompt_tokens_per_s']:>12.0f} "
            f"{w['completion_tokens_per_s']:>9.0f} {w.get('restarts', 0):>8} {w.get('failures', 0):>8}"
        )
    return lines


# ----------------------------------------------------------------------------------------------
# The job


def _for_item(line: str, item_id: str) -> str:
    """A judgment of a request, as the judgment of ``item_id`` (an item with the same texts)."""
    j = Judgment.model_validate_json(line)
    return line if j.item_id == item_id else j.model_copy(update={"item_id": item_id}).model_dump_json()


def _progress(total: int | None, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="req", desc="judging", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def iter_items(
    cfg: JobConfig, rubrics: list[Rubric], rejects: list[dict[str, Any]], counts: JobSummary
) -> Iterator[Item]:
    """Valid items of the dataset; invalid rows are appended to ``rejects`` with their reason."""
    for line, row, error in iter_rows(cfg.data):
        counts.rows += 1
        if error is None:
            try:
                item = Item.model_validate(row)
            except pydantic.ValidationError as exc:
                error = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors(include_url=False)
                )
            else:
                problems = [p for p in (item_fits(r, item) for r in rubrics) if p]
                if problems:
                    error = "; ".join(problems)
        if error is not None:
            rejects.append({"line": line, "error": error, "row": row})
            continue
        counts.items += 1
        yield item
        if cfg.limit is not None and counts.items >= cfg.limit:
            return


BackendFactory = Callable[[], Backend]


@dataclass
class BatchResult:
    """Completions for one batch of requests, from whichever worker ran it."""

    requests: list[JudgeRequest]
    completions: list[Completion]
    info: JudgeInfo
    elapsed_s: float
    worker: str = "local"


class Executor(Protocol):
    """Runs batches of requests and yields their results as they complete.

    ``run`` pulls batches from the iterator only when it has room for them, so a lazy iterator
    gives backpressure: the dataset is read no faster than the judges consume it.
    """

    def run(self, batches: Iterator[list[JudgeRequest]]) -> Iterator[BatchResult]: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Runs every batch in this process on one backend, created on first use."""

    def __init__(self, factory: BackendFactory, owns_backend: bool = True) -> None:
        self._factory = factory
        self._owns = owns_backend
        self._backend: Backend | None = None
        self._info: JudgeInfo | None = None

    def backend(self) -> tuple[Backend, JudgeInfo]:
        if self._backend is None:
            self._backend = self._factory()
            self._info = self._backend.info()
        assert self._info is not None
        return self._backend, self._info

    def run(self, batches: Iterator[list[JudgeRequest]]) -> Iterator[BatchResult]:
        for batch in batches:
            be, info = self.backend()
            start = time.perf_counter()
            completions = be.generate([r.messages for r in batch], [r.sampling for r in batch])
            yield BatchResult(batch, completions, info, time.perf_counter() - start)

    def stats(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        if self._backend is not None and self._owns:
            self._backend.close()
        self._backend = None


def _local_executor(
    cfg: JobConfig, backend: Backend | BackendFactory | None, judge_id: str | None = None
) -> tuple[LocalExecutor, str]:
    """The in-process executor for ``backend`` (or the configured one) and the judge's identity.

    A factory is called here only to learn the judge's identity; given ``judge_id``, it is left
    for the first batch, so a job with nothing to do never creates its backend.
    """
    from judge.backends._models import resolve_model

    if backend is None:
        model = resolve_model(cfg.judge.model) if cfg.judge.backend != "openai" else cfg.judge.model
        judge_id = judge_identity(cfg.judge.backend, model, cfg.judge.options)
        factory: BackendFactory = lambda: create_backend(cfg.judge.backend, model=model, **cfg.judge.options)
        return LocalExecutor(factory), judge_id
    if callable(backend) and not hasattr(backend, "generate"):
        executor = LocalExecutor(backend)  # type: ignore[arg-type]
        if judge_id is not None:
            return executor, judge_id
    else:
        ready: Backend = backend  # type: ignore[assignment]
        executor = LocalExecutor(lambda: ready, owns_backend=False)
    _, info = executor.backend()
    return executor, stable_hash([info.backend, info.model_hash, info.dtype])


def job_judge_id(cfg: JobConfig) -> str:
    """The identity of the configured judge, without loading it."""
    from judge.backends._models import resolve_model

    model = resolve_model(cfg.judge.model) if cfg.judge.backend != "openai" else cfg.judge.model
    return judge_identity(cfg.judge.backend, model, cfg.judge.options)


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
        progress: show a progress bar on stderr.
        on_batch: called with the number of batches written so far (tests use it to crash a job).
        executor: where batches run (default: in this process); ``cluster`` passes a Ray pool.
        judge_id: the judge's identity when an executor or a backend factory is given (see
            :func:`job_judge_id`); with a factory it lets a job with nothing to do skip creating it.
    """
    t0 = time.perf_counter()
    rubrics = [resolve_rubric(r) for r in cfg.rubrics]  # bad rubrics fail before any model loads
    by_hash = {r.content_hash: r for r in rubrics}
    if len(by_hash) != len(rubrics):
        raise ConfigError("the same rubric is listed twice in 'rubrics'")
    if not Path(cfg.data).is_file():
        raise DataError(f"dataset not found: {cfg.data}")
    if executor is None:
        executor, judge_id = _local_executor(cfg, backend, judge_id)
    elif judge_id is None:
        judge_id = job_judge_id(cfg)

    paths = job_paths(cfg.output)
    paths.output.parent.mkdir(parents=True, exist_ok=True)
    if paths.output.exists() and not paths.part.exists():
        os.replace(paths.output, paths.part)  # reopen a finished job: new items may have been added
    summary = JobSummary(output=str(paths.output))
    # The output file is the truth; the ledger catches up with it (and refills the cache from it).
    ledger = OutputLedger(paths.cache)
    cache = JudgmentCache(Path(cfg.cache_dir) / "judgments.sqlite" if cfg.cache_dir else paths.cache)
    ledger.sync(paths.part, on_lines=cache.put_many)
    rejects = _Rejects(paths.rejects)
    bar = _progress(None, progress)
    total = count_rows(cfg.data)
    if total is not None:
        per_item = sum(2 if r.mode == "pairwise" and cfg.pairwise_orders == "both" else 1 for r in rubrics)
        bar.total = total * per_item
        bar.refresh()

    appender = _Appender(paths.part)
    # Requests sent to the judge but not yet written, by key, with the ids of the items waiting for
    # their judgment (items whose texts are the same share one request), and cache hits not yet
    # written, by slot. Both are bounded by the work in flight: all the memory deduplication needs
    # beyond the ledger.
    waiting: dict[str, list[str]] = {}
    hits: dict[str, str] = {}
    info: JudgeInfo | None = None

    def emit(lines: list[tuple[str, str]]) -> None:
        offset, last = appender.write(line for _, line in lines)
        ledger.record([slot for slot, _ in lines], offset, last)

    def flush_hits() -> None:
        nonlocal info
        if not hits:
            return
        emit(list(hits.items()))
        if info is None:
            info = JudgeInfo.model_validate(json.loads(next(iter(hits.values())))["judge"])
        summary.cached += len(hits)
        bar.update(len(hits))
        hits.clear()

    def batches() -> Iterator[list[JudgeRequest]]:
        pending: list[JudgeRequest] = []
        for item in iter_items(cfg, rubrics, rejects, summary):  # type: ignore[arg-type]
            for rubric in rubrics:
                for req in build_requests(rubric, item, cfg, judge_id):
                    slot = output_slot(req.key, req.item_id)
                    if slot in hits:  # a repeated row whose judgment is about to be written
                        continue
                    run = ledger.lookup(slot)
                    if run is not None:
                        if run < ledger.run:  # written by an earlier run of this job
                            summary.resumed += 1
                            bar.update(1)
                        continue
                    ids = waiting.get(req.key)
                    if ids is not None:  # the same request is on its way: judged once, written per item
                        if req.item_id not in ids:
                            ids.append(req.item_id)
                        continue
                    cached = cache.get(req.key)
                    if cached is not None:
                        hits[slot] = _for_item(cached, req.item_id)
                        if len(hits) >= cfg.batch_size:
                            flush_hits()
                        continue
                    waiting[req.key] = [req.item_id]
                    pending.append(req)
                    if len(pending) >= cfg.batch_size:
                        yield pending
                        pending = []
        flush_hits()
        if pending:
            yield pending

    postfix = getattr(executor, "postfix", None)
    n_batches = 0
    completed = False
    try:
        for result in executor.run(batches()):
            info = result.info
            summary.judge_s += result.elapsed_s
            per = result.elapsed_s / max(len(result.requests), 1)
            lines: list[tuple[str, str]] = []
            judged: list[tuple[str, str]] = []
            for r, c in zip(result.requests, result.completions):
                j = judgment_from(r, by_hash[r.rubric.hash], c, result.info, per)
                line = j.model_dump_json()
                judged.append((r.key, line))
                for item_id in waiting.pop(r.key, [r.item_id]):
                    slot = output_slot(r.key, item_id)
                    if ledger.lookup(slot) is not None:  # never write a judgment twice
                        continue
                    if item_id != r.item_id:  # another item with the same texts
                        lines.append((slot, _for_item(line, item_id)))
                        summary.cached += 1
                        continue
                    lines.append((slot, line))
                    summary.new_judgments += 1
                    summary.prompt_tokens += j.prompt_tokens
                    summary.completion_tokens += j.completion_tokens
            emit(lines)
            cache.put_many(judged)
            bar.update(len(lines))
            if postfix is not None:
                bar.set_postfix_str(postfix(), refresh=False)
            n_batches += 1
            if on_batch is not None:
                on_batch(n_batches)
        flush_hits()
        completed = True
    finally:
        bar.close()
        appender.close()
        stats = executor.stats()
        summary.extra.update(stats)
        if "judge_wall_s" in stats:  # parallel workers: wall time, not the sum of batch times
            summary.judge_s = float(stats["judge_wall_s"])
        executor.close()
        ledger.close()
        cache.close()
        if completed:
            rejects.commit()
        else:
            rejects.discard()

    summary.rejected = len(rejects)
    os.replace(paths.part, paths.output)
    from judge.runner._finish import finish_job

    finish_job(cfg, paths.output, rubrics, summary)  # statistics, pair verdicts file, bias diagnostics
    summary.wall_s = time.perf_counter() - t0
    if info is not None:
        summary.judge = info.model_dump()
    atomic_write(paths.summary, json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary
