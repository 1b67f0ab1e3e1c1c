"""The seams of the runner: what a task asks for (:class:`Task`) and where its batches run (:class:`Executor`).

A task turns an input item into typed requests (each with a content-addressed ``key``, the
``item_id`` it belongs to, chat ``messages`` and ``sampling`` parameters) and a completion of a
request into a result record (a pydantic model with ``key`` and ``item_id`` fields). The runner
knows nothing else about it: judging is one task (:class:`JudgeTask`), generating candidates with
a policy model is another, and both share the ledger, the cache, resume and the Ray pool.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

from pydantic import BaseModel

from judge.backends._base import Backend, Completion, generate_each
from judge.core._records import JudgeInfo, JudgeRequest, Judgment, Message, SamplingParams

__all__ = ["BatchResult", "Executor", "JudgeTask", "LocalExecutor", "Request", "Task"]


class Request(Protocol):
    """One call to a model: what the runner needs of a task's request."""

    key: str
    item_id: str
    messages: list[Message]
    sampling: SamplingParams


class Task(Protocol):
    """Requests from items, and result records from completions."""

    #: The record type written to the output (a pydantic model with ``key`` and ``item_id``).
    record_type: type[BaseModel]

    def requests(self, item: Any) -> Sequence[Request]:
        """Every request that ``item`` needs."""
        ...

    def record(self, request: Any, completion: Completion, info: JudgeInfo, latency_s: float) -> BaseModel:
        """The result record of one completed request."""
        ...


class JudgeTask:
    """Judging as a runner task: a :class:`~judge.scoring.Judge`'s requests and judgments."""

    record_type = Judgment

    def __init__(self, judge: Any) -> None:
        self.judge = judge

    def requests(self, item: Any) -> list[JudgeRequest]:
        return self.judge.requests(item)

    def record(self, request: JudgeRequest, completion: Completion, info: JudgeInfo, latency_s: float) -> Judgment:
        return self.judge.read(request, completion, info, latency_s)


@dataclass
class BatchResult:
    """Completions for one batch of requests, from whichever worker ran it."""

    requests: list[Any]
    completions: list[Completion]
    info: JudgeInfo
    elapsed_s: float
    worker: str = "local"


class Executor(Protocol):
    """Runs batches of requests and yields their results as they complete.

    ``run`` pulls batches from the iterator only when it has room for them, so a lazy iterator
    gives backpressure: the dataset is read no faster than the model consumes it.
    """

    def run(self, batches: Iterator[list[Any]]) -> Iterator[BatchResult]: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


BackendFactory = Callable[[], Backend]


class LocalExecutor:
    """Runs every batch in this process on one backend, created on first use.

    A backend that fails a whole batch is asked again one request at a time, so only the requests
    that fail themselves come back failed (see :func:`judge.backends.generate_each`).
    """

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

    def run(self, batches: Iterator[list[Any]]) -> Iterator[BatchResult]:
        for batch in batches:
            be, info = self.backend()
            start = time.perf_counter()
            completions = generate_each(be, [r.messages for r in batch], [r.sampling for r in batch])
            yield BatchResult(batch, completions, info, time.perf_counter() - start)

    def stats(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        if self._backend is not None and self._owns:
            self._backend.close()
        self._backend = None
