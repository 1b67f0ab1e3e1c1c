"""The resumable batch runner: items -> requests -> dedupe/resume/cache -> dispatch -> write.

Generic over a :class:`~judge.runner._task.Task`: it knows requests only by their ``key``,
``item_id``, ``messages`` and ``sampling``, and result records only as pydantic models with
``key`` and ``item_id``. Guarantees, whatever the task:

- each (request key, item id) slot is written to the output once (the :class:`OutputLedger`);
- a request whose record is cached is never sent again; one request serves every item with the
  same texts (judged once, written per item);
- a killed run resumes where the output ends (a torn last line is cut off);
- only the requests in flight are held in memory, and the items are read no faster than the
  executor consumes batches (backpressure);
- a request the backend fails on is written as failed, is not cached, and is retried by the next
  run (its line is then replaced); a prompt too long for the model is a reject, not a failure.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from pydantic import BaseModel

from judge.core._io import atomic_write
from judge.core._records import JudgeInfo
from judge.runner._cache import FAILED, JudgmentCache, OutputLedger, line_slot, output_slot
from judge.runner._task import BatchResult, Executor, Task

__all__ = ["Rejects", "RunCounts", "Runner", "failed_line"]


def failed_line(line: str) -> bool:
    """Whether an output line holds a request that failed in the backend (not cached; retried)."""
    if "error_kind" not in line:  # cheap test first: almost every line is a success
        return False
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return False
    kind = obj.get("error_kind") or (obj.get("extra") or {}).get("error_kind")
    return kind == "backend"


class Rejects:
    """Rejected rows and requests, streamed to a temporary file and renamed into place at the end."""

    def __init__(self, path: Path) -> None:
        for stale in path.parent.glob(path.name + ".tmp*"):  # left by a killed run of this job
            stale.unlink(missing_ok=True)
        self._path = path
        self._tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        self._fh = self._tmp.open("w", encoding="utf-8")
        self.rows = 0
        self.requests = 0

    def row(self, line: int, row: Any, error: str) -> None:
        """A dataset row that failed validation."""
        self._write({"line": line, "error": error, "row": row})
        self.rows += 1

    def request(self, item_id: str, key: str, error: str) -> None:
        """A valid item whose request cannot be sent (e.g. its prompt does not fit the context)."""
        self._write({"item_id": item_id, "key": key, "error": error})
        self.requests += 1

    def _write(self, obj: dict[str, Any]) -> None:
        self._fh.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")

    def commit(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self._path)

    def discard(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)


class _Appender:
    """Appends records as JSON lines, durable at every flush."""

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


@dataclass
class RunCounts:
    """What one run of the runner did."""

    new: int = 0
    resumed: int = 0
    cached: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    judge_s: float = 0.0
    batches: int = 0
    info: JudgeInfo | None = None
    superseded: set[str] = field(default_factory=set)


class _Progress:
    """Counts *items*: an item is done when every one of its requests is written, resumed or skipped."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self._open: dict[int, int] = {}

    def opened(self, seq: int, n: int) -> None:
        if n == 0:
            self.bar.update(1)
        else:
            self._open[seq] = n

    def settle(self, seq: int) -> None:
        left = self._open.get(seq)
        if left is None:
            return
        if left <= 1:
            del self._open[seq]
            self.bar.update(1)
        else:
            self._open[seq] = left - 1


class Runner:
    """Runs a :class:`Task` over items into one append-only output, resumably.

    Args:
        task: requests from items, records from completions.
        executor: where batches run (in this process, or a Ray pool).
        part: the output being written (renamed into place by the caller when the run completes).
        ledger: the output's ledger.
        cache: the record cache (content-addressed by request key).
        rejects: where requests that cannot be sent are reported.
        batch_size: requests per batch.
        bar: a progress bar (tqdm-like: ``update``, ``set_postfix_str``), counting items.
        on_batch: called with the number of batches written so far (tests use it to crash a run).
    """

    def __init__(
        self,
        task: Task,
        executor: Executor,
        part: Path,
        ledger: OutputLedger,
        cache: JudgmentCache,
        rejects: Rejects,
        batch_size: int,
        bar: Any,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.task = task
        self.executor = executor
        self.part = part
        self.ledger = ledger
        self.cache = cache
        self.rejects = rejects
        self.batch_size = batch_size
        self.bar = bar
        self.progress = _Progress(bar)
        self.on_batch = on_batch
        self.counts = RunCounts()
        # Requests sent but not yet written, by key, with the (item id, item seq) waiting for them
        # (items with the same texts share one request); cache hits not yet written, by slot.
        # Both are bounded by the work in flight.
        self._waiting: dict[str, list[tuple[str, int]]] = {}
        self._hits: dict[str, tuple[str, int]] = {}
        self._appender: _Appender | None = None

    # -- the steps

    def expand(self, items: Iterable[Any]) -> Iterator[tuple[Any, int]]:
        """Each item's requests, with the item's sequence number."""
        for seq, item in enumerate(items):
            reqs = list(self.task.requests(item))
            self.progress.opened(seq, len(reqs))
            for req in reqs:
                yield req, seq

    def lookup(self, requests: Iterable[tuple[Any, int]]) -> Iterator[list[Any]]:
        """Batches of the requests that must be sent: not in the output, not on their way, not cached."""
        pending: list[Any] = []
        for req, seq in requests:
            slot = output_slot(req.key, req.item_id)
            if slot in self._hits:  # a repeated row whose record is about to be written
                self.progress.settle(seq)
                continue
            run = self.ledger.lookup(slot)
            if run == FAILED:
                self.counts.superseded.add(slot)  # failed in an earlier run: try again
            elif run is not None:
                if run < self.ledger.run:  # written by an earlier run of this job
                    self.counts.resumed += 1
                self.progress.settle(seq)
                continue
            waiting = self._waiting.get(req.key)
            if waiting is not None:  # the same request is on its way: sent once, written per item
                waiting.append((req.item_id, seq))
                continue
            cached = self.cache.get(req.key)
            if cached is not None:
                self._hits[slot] = (self._for_item(cached, req.item_id), seq)
                if len(self._hits) >= self.batch_size:
                    self._flush_hits()
                continue
            self._waiting[req.key] = [(req.item_id, seq)]
            pending.append(req)
            if len(pending) >= self.batch_size:
                yield pending
                pending = []
        self._flush_hits()
        if pending:
            yield pending

    def write(self, result: BatchResult) -> None:
        """Write one batch's records (one per waiting item), cache the successful ones."""
        c = self.counts
        c.info = result.info
        c.judge_s += result.elapsed_s
        per = result.elapsed_s / max(len(result.requests), 1)
        lines: list[tuple[str, str]] = []
        failed: list[str] = []
        to_cache: list[tuple[str, str]] = []
        for req, comp in zip(result.requests, result.completions):
            waiting = self._waiting.pop(req.key, [(req.item_id, -1)])
            if comp.error_kind == "too_long":
                c.skipped += 1
                for item_id, seq in waiting:
                    self.rejects.request(item_id, req.key, f"too long for the model: {comp.error}")
                    self.progress.settle(seq)
                continue
            record = self.task.record(req, comp, result.info, per)
            line = record.model_dump_json()
            is_failed = comp.error is not None
            if is_failed:
                c.failed += 1
            else:
                to_cache.append((req.key, line))
            for item_id, seq in waiting:
                slot = output_slot(req.key, item_id)
                self.progress.settle(seq)
                run = self.ledger.lookup(slot)
                if run is not None and run != FAILED:  # never write a record twice
                    continue
                if any(s == slot for s, _ in lines):  # a repeated row of one item in this batch
                    continue
                if run == FAILED:
                    c.retried += 1
                if is_failed:
                    failed.append(slot)
                if item_id != req.item_id:  # another item with the same texts
                    lines.append((slot, self._for_item(line, item_id)))
                    c.cached += 1
                    continue
                lines.append((slot, line))
                c.new += 1
                c.prompt_tokens += comp.prompt_tokens
                c.completion_tokens += comp.completion_tokens
        self._emit(lines, failed)
        self.cache.put_many(to_cache)
        postfix = getattr(self.executor, "postfix", None)
        if postfix is not None:
            self.bar.set_postfix_str(postfix(), refresh=False)
        c.batches += 1
        if self.on_batch is not None:
            self.on_batch(c.batches)

    def run(self, items: Iterable[Any]) -> RunCounts:
        """Run every item's requests to completion; return what this run did.

        The executor is closed at the end, whether the run completes or fails.
        """
        self._appender = _Appender(self.part)
        try:
            for result in self.executor.run(self.lookup(self.expand(items))):
                self.write(result)
            self._flush_hits()
        finally:
            self._appender.close()
            self._appender = None
        if self.counts.superseded:
            compact(self.part, self.counts.superseded)
        return self.counts

    # -- helpers

    def _emit(self, lines: list[tuple[str, str]], failed: Iterable[str] = ()) -> None:
        if not lines:
            return
        assert self._appender is not None
        offset, last = self._appender.write(line for _, line in lines)
        self.ledger.record([slot for slot, _ in lines], offset, last, failed)

    def _flush_hits(self) -> None:
        if not self._hits:
            return
        self._emit([(slot, line) for slot, (line, _) in self._hits.items()])
        if self.counts.info is None:
            first = json.loads(next(iter(self._hits.values()))[0])
            if isinstance(first.get("judge"), dict):
                self.counts.info = JudgeInfo.model_validate(first["judge"])
        for _, seq in self._hits.values():
            self.progress.settle(seq)
        self.counts.cached += len(self._hits)
        self._hits.clear()

    def _for_item(self, line: str, item_id: str) -> str:
        """A record of a request, as the record of ``item_id`` (an item with the same texts)."""
        rec: BaseModel = self.task.record_type.model_validate_json(line)
        if getattr(rec, "item_id", None) == item_id:
            return line
        return rec.model_copy(update={"item_id": item_id}).model_dump_json()


def compact(output: Path, slots: set[str]) -> None:
    """Keep only the last line of each slot in ``slots`` (failed requests that were retried).

    Streams the file twice and replaces it atomically; the ledger notices the new file on the
    next run and rebuilds itself from it.
    """
    last: dict[str, int] = {}
    with output.open("rb") as fh:
        for n, line in enumerate(fh):
            found = line_slot(line)
            if found is not None and found[1] in slots:
                last[found[1]] = n

    def kept() -> Iterator[bytes]:
        with output.open("rb") as fh:
            for n, line in enumerate(fh):
                found = line_slot(line)
                if found is not None and found[1] in slots and last.get(found[1]) != n:
                    continue
                yield line

    atomic_write(output, (line.decode("utf-8") for line in kept()))


def progress_bar(total: int | None, enabled: bool, unit: str = "item", desc: str = "judging") -> Any:
    """A tqdm bar on stderr (silent when disabled)."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, disable=not enabled, file=sys.stderr, dynamic_ncols=True)
