"""The judge as a library object: rubrics + backend + scoring plan + prompt policy, in memory.

>>> from judge import Judge
>>> judge = Judge.load("configs/judge.yaml")                      # doctest: +SKIP
>>> judgments = judge.score(items)                                 # doctest: +SKIP
>>> verdicts = judge.compare(pairs)                                # doctest: +SKIP

A :class:`Judge` owns request building (:meth:`Judge.requests`) and verdict reading
(:meth:`Judge.read`); the batch runner, the Ray workers' driver, juries and evals all go through
it. It needs no dataset, output path or job config. Its :attr:`Judge.judge_id` is known before the
model loads, and is the same whether the judge was built from a config or around a ready backend.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from judge.backends._base import Backend, Completion, backend_identity, check_backend, generate_each, identity_of
from judge.core._config import JudgeConfig, JudgeSpec, SamplingConfig, ScoringConfig
from judge.core._load import load_judge_spec
from judge.core._errors import ConfigError
from judge.core._records import Item, JudgeInfo, JudgeRequest, Judgment, PairVerdict, SamplingParams
from judge.inputs._rubric import Rubric, resolve_rubric
from judge.scoring._plan import ScorePlan, judge_tokenizer, sampling_for, score_plan
from judge.scoring._fit import TruncationPolicy
from judge.scoring._requests import Orders, build_requests, item_fits, judgment_from

__all__ = ["Judge"]

BackendSource = Backend | Callable[[], Backend]


class Judge:
    """One judge: which model, which rubrics, how verdicts are asked for and read.

    Args:
        rubric: a rubric id, path or :class:`Rubric`, or a list of them.
        backend: a backend name (created on first use, with ``model`` and ``options``), or a ready
            backend (left open: its owner closes it).
        model: the model for a named backend (``bundled`` by default, a directory, or a served
            name). With a ready backend it names the tokenizer that plans the verdict tokens
            (default: the backend's own model).
        options: backend options for a named backend.
        scoring: how verdicts are read (method, top-k logprobs, sanitising, pair policy).
        sampling: decoding settings (greedy by default).
        pairwise_orders: pairwise rubrics: ``both`` (the default), ``AB`` or ``random``.
        batch_size: requests sent to the backend at once by :meth:`score` and :meth:`compare`.
        truncation: an item too long for the context: ``none`` leaves it to the backend, which
            refuses it (``too_long``); ``middle`` cuts its judged texts to fit
            (:func:`judge.scoring._fit.fit_item`), recorded in the judgment's ``extra.truncation``.

    Raises:
        ConfigError, RubricError: a bad rubric, an unknown backend or options it does not take,
            before any model loads.
    """

    def __init__(
        self,
        rubric: str | Rubric | Sequence[str | Rubric] = "helpfulness",
        backend: str | BackendSource = "vllm",
        *,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        scoring: ScoringConfig | None = None,
        sampling: SamplingConfig | None = None,
        pairwise_orders: Orders = "both",
        batch_size: int = 64,
        truncation: TruncationPolicy = "none",
    ) -> None:
        listed = [rubric] if isinstance(rubric, (str, Rubric)) else list(rubric)
        self.rubrics: list[Rubric] = [r if isinstance(r, Rubric) else resolve_rubric(r) for r in listed]
        if not self.rubrics:
            raise ConfigError("a judge needs at least one rubric")
        if len({r.content_hash for r in self.rubrics}) != len(self.rubrics):
            raise ConfigError("the same rubric is listed twice in 'rubrics'")
        self._by_hash = {r.content_hash: r for r in self.rubrics}
        self.scoring = scoring or ScoringConfig()
        self.sampling = sampling or SamplingConfig()
        self.pairwise_orders: Orders = pairwise_orders
        self.batch_size = batch_size
        self._backend: Backend | None = None
        self._factory: Callable[[], Backend] | None = None
        self._owns = False
        self._info: JudgeInfo | None = None
        if isinstance(backend, str):
            from judge.backends._models import resolve_model

            opts = dict(options or {})
            check_backend(backend, opts)  # unknown names and options fail here, before anything loads
            model = model or "bundled"
            resolved = resolve_model(model) if backend != "openai" else model
            self.backend_name, self.model = backend, resolved
            self.judge_id = backend_identity(backend, resolved, opts)
            self._factory = lambda: self._create(backend, resolved, opts)
            self._owns = True
        elif hasattr(backend, "generate"):
            self._backend = backend  # type: ignore[assignment]
            self.backend_name = backend.name  # type: ignore[union-attr]
            self.model = model or str(getattr(backend, "identity_args", {}).get("model", ""))
            self.judge_id = identity_of(backend)  # type: ignore[arg-type]
        else:
            raise ConfigError("a judge's backend is a backend name or a ready backend")
        self._tokenizer = judge_tokenizer(self.backend_name, self.model) if self.model else None
        self.truncation: TruncationPolicy = truncation
        self._options = dict(options or {})
        if truncation != "none" and not (self.model and Path(self.model).is_dir()):
            raise ConfigError(
                f"judge.truncation {truncation!r} counts tokens with the judge's own tokenizer: it needs "
                f"judge.model to be a local model directory, got {self.model!r}"
            )

    # ------------------------------------------------------------------------------------------
    # Construction

    @staticmethod
    def _create(name: str, model: str, options: dict[str, Any]) -> Backend:
        from judge.backends._base import create_backend

        return create_backend(name, model=model, **options)

    @classmethod
    def from_spec(cls, spec: JudgeSpec, backend: BackendSource | None = None, batch_size: int = 64) -> "Judge":
        """The judge a config describes (a :class:`JudgeSpec`, or a job config, which is one).

        Args:
            spec: the judge config.
            backend: a ready backend to use instead of creating the configured one.
            batch_size: requests sent to the backend at once.
        """
        jc: JudgeConfig = spec.judge
        return cls(
            list(spec.rubrics),
            backend if backend is not None else jc.backend,
            model=jc.model,
            options=dict(jc.options),
            scoring=spec.scoring,
            sampling=spec.sampling,
            pairwise_orders=spec.pairwise_orders,
            batch_size=batch_size,
            truncation=jc.truncation,
        )

    @classmethod
    def load(cls, path: str | Path, backend: BackendSource | None = None) -> "Judge":
        """The judge of a judge config file (``configs/judge.yaml``) or a job config file."""
        from judge.core._config import JobConfig

        try:
            spec: JudgeSpec = load_judge_spec(path)
        except ConfigError as exc:
            # A job config is a judge config plus data and output: accept one too.
            from judge.core._load import load_job_config

            try:
                job: JobConfig = load_job_config(path)
            except ConfigError:
                raise exc from None
            return cls.from_spec(job, backend, job.batch_size)
        return cls.from_spec(spec, backend)

    # ------------------------------------------------------------------------------------------
    # Requests and verdicts

    def plan(self, rubric: Rubric) -> ScorePlan:
        """How ``rubric``'s verdict is asked for and read by this judge."""
        s = self.scoring
        return score_plan(rubric, s.method, s.top_logprobs, self.sampling.max_tokens, self._tokenizer)

    def params(self, rubric: Rubric) -> SamplingParams:
        """The decoding parameters of ``rubric``'s requests (the plan's constraint included)."""
        s = self.sampling
        return sampling_for(rubric, self.plan(rubric), s.temperature, s.top_p, s.seed)

    def rubric(self, content_hash: str) -> Rubric:
        """This judge's rubric with ``content_hash``."""
        return self._by_hash[content_hash]

    def check(self, item: Item) -> str | None:
        """Why ``item`` cannot be judged by every rubric of this judge, or None."""
        problems = [p for p in (item_fits(r, item) for r in self.rubrics) if p]
        return "; ".join(problems) or None

    def requests(self, item: Item) -> list[JudgeRequest]:
        """Every request that judges ``item`` by this judge's rubrics (two per pair in both orders).

        Raises:
            DataError: ``item`` lacks a field a rubric needs.
        """
        problem = self.check(item)
        if problem is not None:
            from judge.core._errors import DataError

            raise DataError(f"item {item.id!r}: {problem}")
        out: list[JudgeRequest] = []
        s = self.sampling
        for rubric in self.rubrics:
            plan, params = self.plan(rubric), self.params(rubric)

            def build(it: Item, rubric: Rubric = rubric, plan: ScorePlan = plan, params: SamplingParams = params
                      ) -> list[JudgeRequest]:  # fmt: skip
                return build_requests(rubric, it, self.judge_id, plan, params, orders=self.pairwise_orders,
                                      sanitize=self.scoring.sanitize, seed=s.seed)  # fmt: skip

            reqs = build(item)
            out.extend(reqs if self.truncation == "none" else self._fit(item, reqs, build, params.max_tokens))
        return out

    def _fit(
        self, item: Item, reqs: list[JudgeRequest], build: Callable[[Item], list[JudgeRequest]], max_tokens: int
    ) -> list[JudgeRequest]:
        """``reqs``, or the requests of ``item`` with its judged texts cut to fit the context."""
        from judge.backends._chat import prompt_token_bound
        from judge.scoring._fit import chat_tokenizer, fit_item

        be = self._backend
        ctx = getattr(be, "context_length", None) or self._options.get("max_model_len") or 4096  # backends' default
        if all(prompt_token_bound(r.messages) + max_tokens <= ctx for r in reqs):
            return reqs  # surely fits: no tokenizer needed
        tok = getattr(be, "tokenizer", None) or chat_tokenizer(self.model)
        fit = fit_item(item, lambda it: [r.messages for r in build(it)], tokenizer=tok, context_length=ctx,
                       max_tokens=max_tokens, policy=self.truncation)  # fmt: skip
        if not fit.truncation:
            return reqs  # fits as it is, or cannot fit even cut: the backend refuses it with its reason
        return [r.model_copy(update={"trace": r.trace.model_copy(update={"truncation": fit.truncation})})
                for r in build(fit.item) if r.trace is not None]  # fmt: skip

    def read(self, request: JudgeRequest, completion: Completion, info: JudgeInfo, latency_s: float = 0.0) -> Judgment:
        """The judgment of one completion of ``request`` (unscored when it cannot be read)."""
        j = judgment_from(request, self._by_hash[request.rubric.hash], completion, info, latency_s)
        if request.trace is not None and request.trace.truncation:
            j = j.model_copy(update={"extra": {**j.extra, "truncation": dict(request.trace.truncation)}})
        return j

    # ------------------------------------------------------------------------------------------
    # The backend

    def backend(self) -> Backend:
        """The backend, created on first use for a named one."""
        if self._backend is None:
            assert self._factory is not None
            self._backend = self._factory()
        return self._backend

    def info(self) -> JudgeInfo:
        """Which model judges (loads a named backend)."""
        if self._info is None:
            self._info = self.backend().info()
        return self._info

    def close(self) -> None:
        """Release a backend this judge created (a ready backend is its owner's to close)."""
        if self._owns and self._backend is not None:
            self._backend.close()
            self._backend = None
            self._info = None

    def __enter__(self) -> "Judge":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------
    # In-memory judging

    def run(self, requests: list[JudgeRequest]) -> list[Judgment]:
        """Judge ``requests`` in batches; a request the backend fails on is unscored, never fatal."""
        out: list[Judgment] = []
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start : start + self.batch_size]
            t0 = time.perf_counter()
            completions = generate_each(self.backend(), [r.messages for r in batch], [r.sampling for r in batch])
            per = (time.perf_counter() - t0) / max(len(batch), 1)
            info = self.info()
            out.extend(self.read(r, c, info, per) for r, c in zip(batch, completions))
        return out

    def score(self, items: Iterable[Item | dict[str, Any]]) -> list[Judgment]:
        """Judge ``items`` by every rubric; judgments in item order (unscored stays unscored).

        Raises:
            DataError: an item lacks a field a rubric needs (``response`` for pointwise ...).
        """
        return self.run([r for item in self._items(items) for r in self.requests(item)])

    def compare(self, pairs: Iterable[Item | dict[str, Any]], policy: str | None = None) -> list[PairVerdict]:
        """Judge pairs by this judge's pairwise rubrics and combine each pair's orders into a verdict.

        Args:
            pairs: items with ``response_a`` and ``response_b``.
            policy: ``strict`` or ``average-probability``; by default ``scoring.pairwise_policy``.
        """
        from judge.analysis._verdicts import pair_verdicts

        if any(r.mode != "pairwise" for r in self.rubrics):
            modes = {r.id: r.mode for r in self.rubrics}
            raise ConfigError(f"compare() needs pairwise rubrics only, this judge has {modes}; use score()")
        judgments = self.score(pairs)
        return pair_verdicts(
            judgments,
            policy or self.scoring.pairwise_policy,  # type: ignore[arg-type]
            self.scoring.tie_threshold,
            self.sampling.seed,
        )

    async def ascore(self, items: Iterable[Item | dict[str, Any]]) -> list[Judgment]:
        """:meth:`score` for servers: runs in a worker thread, so the event loop stays free."""
        listed = list(items)
        return await asyncio.to_thread(self.score, listed)

    async def acompare(self, pairs: Iterable[Item | dict[str, Any]], policy: str | None = None) -> list[PairVerdict]:
        """:meth:`compare` for servers, in a worker thread."""
        listed = list(pairs)
        return await asyncio.to_thread(self.compare, listed, policy)

    def _items(self, items: Iterable[Item | dict[str, Any]]) -> list[Item]:
        from judge.core._errors import DataError

        out = []
        for n, it in enumerate(items, start=1):
            item = it if isinstance(it, Item) else Item.model_validate(it)
            problem = self.check(item)
            if problem is not None:
                raise DataError(f"item {n} ({item.id!r}): {problem}")
            out.append(item)
        return out

    def __repr__(self) -> str:
        ids = ", ".join(r.id for r in self.rubrics)
        return f"Judge(rubrics=[{ids}], backend={self.backend_name!r}, model={self.model!r}, id={self.judge_id[:12]})"


