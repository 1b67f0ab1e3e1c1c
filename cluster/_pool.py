"""The pool: judge worker actors behind the engine's ``Executor`` protocol.

Placement: one placement group holds one bundle per worker (``PACK``: workers fill nodes before
spilling to the next), so the whole pool is reserved at once or not at all. A tensor-parallel judge
on GPUs gets its own placement group of ``tensor_parallel_size`` GPU bundles (``STRICT_PACK``: the
ranks of one engine never span nodes); vLLM's Ray executor starts its rank processes inside it.

Backpressure: at most ``cluster.max_in_flight`` batches are queued per worker; the pool pulls the
next batch from the engine's lazy iterator only when a worker has room, so the dataset is read no
faster than the judges consume it, and only the batches in flight are held in memory.

Failures: a worker that dies (killed, out of memory, node lost) is restarted by Ray up to
``cluster.max_restarts`` times; the batches it held are sent again to the next free worker (the
restarted one or another), up to ``cluster.max_attempts`` tries per batch. Ray's own task retries
are off (``max_task_retries=0``) so that every retry is counted and bounded here. A result is only
ever taken from a completed task, and the engine writes each request key once, so a retried batch
never produces a second judgment.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Iterator

from cluster._runtime import Connection, bundle_shapes, check_model_on_nodes, check_resources, import_ray
from cluster._slots import Task as _Task
from cluster._slots import WorkerSlot as _Worker
from cluster._slots import error_text as _error_text
from cluster._slots import worker_options
from cluster._worker import JudgeWorker
from judge.core._errors import ClusterError
from judge.core._config import ClusterConfig, JobConfig, ModelConfig
from judge.runner._task import BatchResult

__all__ = ["JudgePool", "worker_options"]

# Backends that load a model directory from the node's disk (checked on every node at start).
LOCAL_MODEL_BACKENDS = ("vllm", "hf")


class JudgePool:
    """Judge batches on Ray actors, each owning one backend. Implements ``judge.runner._engine.Executor``.

    Resources are checked when the pool is made (a request the cluster cannot hold fails at once);
    the actors start on the first batch, so a job with nothing left to do starts none.

    Args:
        cfg: the job; ``cfg.judge`` says what each worker loads, ``cfg.cluster`` how many and where.
        connection: the Ray connection (see :func:`cluster.connect`); Ray must be initialised.
        model, cluster: instead of ``cfg``, what each worker loads and the pool's size, e.g. a
            policy writing candidates: the workers serve any requests with messages and sampling.
    """

    def __init__(self, cfg: JobConfig | None = None, connection: Connection | None = None, *,
                 model: ModelConfig | None = None, cluster: ClusterConfig | None = None) -> None:  # fmt: skip
        from judge.backends._models import resolve_model

        if cfg is not None:
            model, cluster = cfg.judge, cfg.cluster
        if model is None or cluster is None:
            raise ClusterError("a pool needs a job config, or both model= and cluster=")
        self.cfg, self.model_cfg, self.cc = cfg, model, cluster
        self._conn = connection or Connection(address="existing", owned=False)
        self._ray = import_ray()
        if not self._ray.is_initialized():
            raise ClusterError("Ray is not initialised: call cluster.connect(cfg.cluster) first")
        backend = model.backend
        self._model = resolve_model(model.model) if backend != "openai" else model.model
        self._tp = int(model.options.get("tensor_parallel_size", 1) or 1)
        check_resources(self.cc, self._tp, self._conn)
        self._workers = [_Worker(name=f"w{i}", index=i) for i in range(self.cc.workers)]
        self._pgs: list[Any] = []
        # Workers being restarted, by their pending `ready` call; kept across jobs of a shared pool.
        self._recovering: dict[Any, _Worker] = {}
        self._started = False
        self._closed = False
        self.reset_stats()
        self.startup_s = 0.0

    # ------------------------------------------------------------------------------------------
    # Start and stop

    @property
    def actors(self) -> list[Any]:
        """The workers' actor handles (e.g. to kill one in a test)."""
        return [w.actor for w in self._workers]

    def status(self) -> list[dict[str, Any]]:
        """Each worker's state now: up (``available``), dead, and batches in flight."""
        return [
            {"name": w.name, "available": w.available, "dead": w.dead, "inflight": w.inflight} for w in self._workers
        ]

    def start(self) -> None:
        """Reserve the resources, start every worker and wait until each has loaded its backend."""
        if self._started:
            return
        if self._closed:
            raise ClusterError("this pool is closed")
        ray = self._ray
        from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        t0 = time.perf_counter()
        cc, timeout = self.cc, self.cc.startup_timeout_s
        shapes = bundle_shapes(cc, self._tp)
        backend = self.model_cfg.backend
        if backend in LOCAL_MODEL_BACKENDS:
            check_model_on_nodes(self._model, shapes[0], timeout)

        if len(shapes) > 1:
            self._pgs = [placement_group(shapes, strategy="STRICT_PACK") for _ in self._workers]
            where = [(pg, 0) for pg in self._pgs]
        else:
            pg = placement_group(shapes * cc.workers, strategy="PACK")
            self._pgs = [pg]
            where = [(pg, i) for i in range(cc.workers)]
        try:
            ray.get([pg.ready() for pg in self._pgs], timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            for pg in self._pgs:
                remove_placement_group(pg)
            self._pgs = []
            raise ClusterError(
                f"could not reserve {cc.workers} worker(s) of {shapes} within {timeout:g}s: the cluster has "
                "the resources in total but they are held by other jobs (or an autoscaler did not add "
                "nodes). Free them, lower cluster.workers, or raise cluster.startup_timeout_s."
            ) from None

        # A worker's slot is its rank among the workers on its node: on CPU it picks the cores.
        per_node: dict[str, int] = {}
        slots = []
        for pg, idx in where:
            node = placement_group_table(pg)["bundles_to_node_id"].get(idx, "")
            slots.append(per_node.get(node, 0))
            per_node[node] = per_node.get(node, 0) + 1
        cores = max(1, int(round(cc.num_cpus))) if cc.num_gpus == 0 else 0
        actor_cls = ray.remote(JudgeWorker)
        ready = {}
        for w, (pg, idx), slot in zip(self._workers, where, slots):
            w.actor = actor_cls.options(
                num_cpus=cc.num_cpus,
                num_gpus=cc.num_gpus if self._tp <= 1 else 0,
                max_restarts=cc.max_restarts,
                max_task_retries=0,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    placement_group=pg,
                    placement_group_bundle_index=idx,
                    placement_group_capture_child_tasks=self._tp > 1,
                ),
            ).remote(
                w.name,
                backend,
                self._model,
                worker_options(backend, self.model_cfg.options, self._tp),
                backend in LOCAL_MODEL_BACKENDS,
                slot,
                cores,
            )
            ready[w.actor.ready.remote()] = w
        self._started = True
        pending = dict(ready)
        deadline = t0 + timeout
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, deadline - time.perf_counter()))
                if not done:
                    names = ", ".join(w.name for w in pending.values())
                    raise ClusterError(
                        f"worker(s) {names} did not load the judge within {timeout:g}s "
                        "(cluster.startup_timeout_s); see the Ray logs of those actors"
                    )
                w = pending.pop(done[0])
                try:
                    self._mark_ready(w, ray.get(done[0]))
                except ray.exceptions.RayError as exc:
                    # An error raised by the worker's own start (a missing model, a bad option) is
                    # final. A worker lost while loading (out of memory, its node gone) is being
                    # restarted by Ray: wait for it again, as often as it may restart.
                    init_failed = getattr(exc, "actor_init_failed", False) or isinstance(exc, ray.exceptions.RayTaskError)
                    w.failures += 1
                    w.last_error = _error_text(exc)
                    if init_failed or w.failures > cc.max_restarts:
                        raise ClusterError(f"worker {w.name} failed to start: {w.last_error}") from None
                    self.failures += 1
                    pending[w.actor.ready.remote()] = w
        except BaseException:
            self.close()
            raise
        self.startup_s = time.perf_counter() - t0

    def _mark_ready(self, w: _Worker, meta: dict[str, Any]) -> None:
        w.available = True
        w.node = meta["node"]
        w.info = meta["info"]
        w.cores = list(meta.get("cores") or [])
        w.load_s = float(meta.get("load_s", 0.0))
        if meta.get("restarted"):
            w.restarts += 1

    def close(self) -> None:
        """Stop every worker (releasing its engine) and free the placement groups."""
        if self._closed:
            return
        self._closed = True
        ray = self._ray
        if not ray.is_initialized():
            return
        from ray.util.placement_group import remove_placement_group

        # Workers that are up release their engines cleanly; one still restarting is just killed.
        live = [w for w in self._workers if w.actor is not None and w.available and not w.dead]
        refs = [w.actor.close.remote() for w in live]
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=60)
        for w in self._workers:
            if w.actor is not None:
                try:
                    ray.kill(w.actor, no_restart=True)
                except Exception:
                    pass
        for pg in self._pgs:
            try:
                remove_placement_group(pg)
            except Exception:
                pass
        self._pgs = []

    # ------------------------------------------------------------------------------------------
    # Running

    def _pick(self) -> _Worker | None:
        free = [w for w in self._workers if w.available and not w.dead and w.inflight < self.cc.max_in_flight]
        return min(free, key=lambda w: (w.inflight, w.index)) if free else None

    def _failed(self, w: _Worker, task: _Task, error: str, waiting: deque[_Task]) -> None:
        w.failures += 1
        w.last_error = error
        self.failures += 1
        if task.attempts >= self.cc.max_attempts:
            raise ClusterError(
                f"a batch of {len(task.batch)} requests failed {task.attempts} times "
                f"(cluster.max_attempts={self.cc.max_attempts}); last error on worker {w.name} "
                f"({w.node}): {error}"
            )
        self.retries += 1
        waiting.appendleft(task)  # retried first, on whichever worker is free next

    def run(self, batches: Iterator[list[Any]]) -> Iterator[BatchResult]:
        """Send batches (of any requests with messages and sampling) to free workers and yield their results in completion order."""
        ray = self._ray
        RayError = ray.exceptions.RayError
        # A worker process lost (killed, out of memory, its node gone): wait for Ray to restart it.
        WorkerLost = (
            ray.exceptions.RayActorError,
            ray.exceptions.OutOfMemoryError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
        )
        ActorUnavailableError = ray.exceptions.ActorUnavailableError
        it = iter(batches)
        first = next(it, None)
        if first is None:
            return
        self.start()
        waiting: deque[_Task] = deque([_Task(first)])
        exhausted = False
        inflight: dict[Any, tuple[_Task, _Worker]] = {}
        recovering = self._recovering
        t_run = time.perf_counter()
        try:
            while True:
                while True:
                    w = self._pick()
                    if w is None:
                        break
                    if not waiting:
                        if exhausted:
                            break
                        batch = next(it, None)
                        if batch is None:
                            exhausted = True
                            break
                        waiting.append(_Task(batch))
                    task = waiting.popleft()
                    task.attempts += 1
                    ref = w.actor.generate.remote([r.messages for r in task.batch], [r.sampling for r in task.batch])
                    w.inflight += 1
                    inflight[ref] = (task, w)
                self.queue_depth = len(inflight)
                self.max_queue_depth = max(self.max_queue_depth, self.queue_depth)
                if not inflight:
                    if not waiting and exhausted:
                        break  # all done: a worker still restarting is not waited for
                    if not recovering:
                        errors = "; ".join(f"{w.name}: {w.last_error}" for w in self._workers if w.last_error)
                        raise ClusterError(f"every judge worker is dead; last errors: {errors or 'unknown'}")
                done, _ = ray.wait(list(inflight) + list(recovering), num_returns=1, timeout=1.0)
                now = time.perf_counter()
                for ref, w in list(recovering.items()):
                    if now - w.down_since > self.cc.startup_timeout_s:
                        del recovering[ref]
                        w.dead = True
                        w.last_error = f"not back within {self.cc.startup_timeout_s:g}s after a failure"
                if not done:
                    continue
                ref = done[0]
                if ref in recovering:
                    w = recovering.pop(ref)
                    try:
                        self._mark_ready(w, ray.get(ref))
                    except ActorUnavailableError:
                        recovering[w.actor.ready.remote()] = w  # still restarting: ask again
                    except RayError as exc:
                        w.dead = True
                        w.last_error = _error_text(exc)
                    continue
                task, w = inflight.pop(ref)
                w.inflight -= 1
                try:
                    completions, elapsed = ray.get(ref)
                except WorkerLost as exc:
                    self._failed(w, task, _error_text(exc), waiting)
                    if w.available:
                        w.available = False
                        w.down_since = now
                        recovering[w.actor.ready.remote()] = w
                    continue
                except RayError as exc:
                    self._failed(w, task, _error_text(exc), waiting)
                    continue
                w.batches += 1
                w.judgments += len(completions)
                w.busy_s += elapsed
                w.prompt_tokens += sum(c.prompt_tokens for c in completions)
                w.completion_tokens += sum(c.completion_tokens for c in completions)
                self.judgments += len(completions)
                self.queue_depth = len(inflight)
                yield BatchResult(task.batch, completions, w.info, elapsed, worker=w.name)
        finally:
            self.judge_wall_s += time.perf_counter() - t_run

    # ------------------------------------------------------------------------------------------
    # Statistics

    def reset_stats(self) -> None:
        """Start counting afresh (a pool reused by several jobs reports each job on its own)."""
        self.retries = 0
        self.failures = 0
        self.queue_depth = 0
        self.max_queue_depth = 0
        self.judgments = 0
        self.judge_wall_s = 0.0
        for w in getattr(self, "_workers", []):
            w.batches = w.judgments = w.prompt_tokens = w.completion_tokens = w.failures = w.restarts = 0
            w.busy_s = 0.0

    def postfix(self) -> str:
        """One line for the progress bar: per-worker throughput, tokens/s, queue, retries, failures."""
        wall = self.judge_wall_s or 1e-9
        per = " ".join(
            f"{w.name} {w.judgments / w.busy_s:.1f}/s" if w.busy_s > 0 else f"{w.name} -" for w in self._workers
        )
        ptok = sum(w.prompt_tokens for w in self._workers)
        gtok = sum(w.completion_tokens for w in self._workers)
        # judge_wall_s is only final at the end of run(); the busiest worker's time is a fair clock.
        clock = max([w.busy_s for w in self._workers] + [wall if self.judge_wall_s else 0.0]) or 1e-9
        return (
            f"{per} | tok/s prompt {ptok / clock:.0f} gen {gtok / clock:.0f} | queue {self.queue_depth} "
            f"| retries {self.retries} failures {self.failures}"
        )

    def stats(self) -> dict[str, Any]:
        """Per-worker throughput and tokens/s, queue depth, retries, failures, and the cost."""
        workers = [w.stats() for w in self._workers]
        n = self.judgments
        worker_s = self.judge_wall_s * len(self._workers)
        out: dict[str, Any] = {
            "executor": "ray",
            "address": self._conn.address,
            "workers": workers,
            "retries": self.retries,
            "failures": self.failures,
            "max_queue_depth": self.max_queue_depth,
            "startup_s": round(self.startup_s, 3),
            "judge_wall_s": round(self.judge_wall_s, 4),
            "worker_s": round(worker_s, 3),
            "worker_s_per_1k": round(worker_s / n * 1000, 3) if n else 0.0,
            "busy_worker_s_per_1k": round(sum(w["busy_s"] for w in workers) / n * 1000, 3) if n else 0.0,
        }
        gpus = (float(self._tp) if self._tp > 1 else self.cc.num_gpus) if self.cc.num_gpus > 0 else 0.0
        if gpus:
            out["gpu_s_per_1k"] = round(out["worker_s_per_1k"] * gpus, 3)
        return out
