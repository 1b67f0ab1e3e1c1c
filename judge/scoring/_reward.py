"""The judge as an online reward: a TRL reward function that scores a policy's completions as it trains.

>>> from judge import Judge, reward_function
>>> reward = reward_function(Judge("helpfulness", "vllm"))                      # doctest: +SKIP
>>> GRPOTrainer(model=policy, reward_funcs=[reward], args=GRPOConfig(...))     # doctest: +SKIP

TRL (1.16) calls a reward function once per generation batch as ``fn(prompts=, completions=,
completion_ids=, trainer_state=, log_extra=, log_metric=, **columns)``: prompts and completions are
texts, or message lists for a conversational dataset; every other dataset column comes as a list
with one entry per completion; a prompt's ``num_generations`` completions are consecutive. It takes
one float or None per completion. :func:`areward_function` gives the ``async`` variant, for a served
judge (``openai`` backend): TRL awaits async reward functions together on its own event loop.

How TRL treats None: it becomes NaN, and that reward function counts for nothing in that
completion's reward. A completion that every reward function left at None is unscorable: it is
left out of its group's (nan-aware) mean and std and its advantage is 0, so it neither moves the
policy nor shifts its siblings' baseline; ``rewards/<name>/mean`` and ``std`` skip it too. That is
why an unscored judgment is returned as None, never as a default: a 0 or a mid-scale score would be
a verdict nobody gave, and the policy would learn from it.

- Pointwise and reference rubrics: each completion is one item, its reward the judgment's score:
  the logprob-weighted expected score where the judge's plan reads logprobs
  (``Judgment.extra['expected']``), the written score otherwise. ``scale='rubric'`` keeps the
  rubric's own range (1-5); ``'unit'`` is the judgment's ``overall``, in [0, 1]. A reference
  rubric reads the reference answer from a dataset column (``reference`` by default).
- Pairwise rubrics: the completions of one prompt (grouped by prompt text) are compared with each
  other, every pair in the judge's orders (both by default: ``n (n - 1)`` requests for ``n``
  completions); a completion's reward is its mean probability of beating a sibling (ties count
  half), in [0, 1]. A completion with no scored comparison (alone, or every comparison unscored)
  gets None.

Judgments are cached by request key (rubric, judge, decoding settings, exact prompt), so a
(prompt, completion) seen before is not judged again: in memory (bounded, least recently used out)
and, with ``cache=<path>``, in the runner's SQLite :class:`~judge.runner.JudgmentCache`, shared with
jobs and kept across runs. A judgment whose request failed in the backend or did not fit the
context is not cached (the same rule as the runner's).

Each call logs through TRL's ``log_metric`` (averaged per logging step, beside TRL's own
``rewards/<name>/mean``): ``rewards/<name>/abstain_rate`` (share of None), ``score_mean``,
``score_std``, ``group_std`` (mean spread within a prompt's completions; 0 gives GRPO no signal) and
``cache_hit_rate``; and through ``log_extra`` the judge's reason for each None. Outside TRL the
same figures are in :attr:`JudgeReward.stats`, the call's completions in :attr:`JudgeReward.last`.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from judge.core._errors import ConfigError, DataError
from judge.core._records import Item, Judgment
from judge.inputs._rubric import Rubric, resolve_rubric
from judge.scoring._judge import Judge
from judge.scoring._reward_parts import Memory, RewardRecord, RewardStats, completion_text, prompt_text

__all__ = ["AsyncJudgeReward", "JudgeReward", "RewardRecord", "RewardStats", "areward_function", "reward_function"]

Scale = Literal["rubric", "unit"]

#: Keyword arguments TRL adds to the dataset's columns.
_TRAINER_KWARGS = frozenset({"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"})


@dataclass
class _Plan:
    """One call's judging units (items, or pairs of a prompt's completions) and what the cache knew."""

    units: list[Item]
    keys: list[list[str]]
    pairs: list[tuple[int, int]] = field(default_factory=list)
    found: dict[str, Judgment] = field(default_factory=dict)
    misses: list[Item] = field(default_factory=list)
    requests: int = 0
    hits: int = 0


class JudgeReward:
    """A TRL reward function backed by a :class:`~judge.scoring.Judge` (build it with :func:`reward_function`).

    Attributes:
        rubric: the rubric that rewards.
        stats: what the last call did (None before the first).
        last: the last call's completions with their rewards and reasons.
    """

    def __init__(
        self,
        judge: Judge,
        rubric: str | Rubric | None = None,
        *,
        scale: Scale = "rubric",
        cache: bool | str | Path = True,
        cache_size: int = 10_000,
        name: str | None = None,
        reference_column: str = "reference",
    ) -> None:
        if not isinstance(judge, Judge):
            raise ConfigError(f"reward_function needs a judge.Judge, got {type(judge).__name__}")
        self.rubric = _pick_rubric(judge, rubric)
        if scale not in ("rubric", "unit"):
            raise ConfigError(f"scale must be 'rubric' or 'unit', got {scale!r}")
        if scale == "rubric" and self.rubric.mode != "pairwise":
            ranges = {(c.min_score, c.max_score) for c in self.rubric.criteria}
            if len(ranges) > 1:
                shown = ", ".join(f"{c.name} {c.min_score}-{c.max_score}" for c in self.rubric.criteria)
                raise ConfigError(
                    f"scale 'rubric': the criteria of rubric {self.rubric.id!r} have different ranges ({shown}); "
                    "use scale='unit' (the overall score, in [0, 1])"
                )
        if not isinstance(cache_size, int) or cache_size < 1:
            raise ConfigError(f"cache_size must be an integer >= 1, got {cache_size!r}")
        self.scale: Scale = scale
        self.reference_column = reference_column
        self.__name__ = name or f"judge_{self.rubric.id}"
        self._judge = judge
        only = len(judge.rubrics) == 1 and judge.rubrics[0].content_hash == self.rubric.content_hash
        self._view: Judge | None = judge if only else None
        self._memory = Memory(cache_size) if cache is not False else None
        self._store_path = Path(cache) if isinstance(cache, (str, Path)) else None
        self._local = threading.local()  # one SQLite connection per thread (TRL awaits on its own)
        self._lock = threading.Lock()
        self.stats: RewardStats | None = None
        self.last: list[RewardRecord] = []

    @property
    def range(self) -> tuple[float, float]:
        """The lowest and highest reward this function returns."""
        if self.rubric.mode == "pairwise" or self.scale == "unit":
            return 0.0, 1.0
        c = self.rubric.criteria[0]
        return float(c.min_score), float(c.max_score)

    def judge(self) -> Judge:
        """The judge that judges by :attr:`rubric` alone (built around the given judge's backend if it has more)."""
        if self._view is None:
            with self._lock:
                if self._view is None:
                    j = self._judge
                    self._view = Judge(self.rubric, j.backend(), model=j.model or None, scoring=j.scoring,
                                       sampling=j.sampling, pairwise_orders=j.pairwise_orders,
                                       batch_size=j.batch_size, truncation=j.truncation)  # fmt: skip
        return self._view

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        """One reward per completion (None when unscored); TRL's reward-function signature."""
        items = self._items(prompts, completions, kwargs)
        plan = self._plan(items)
        t0 = time.perf_counter()
        new = self.judge().score(plan.misses) if plan.misses else []
        return self._finish(items, plan, new, time.perf_counter() - t0, kwargs)

    # ------------------------------------------------------------------------------------------

    def _items(self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: dict[str, Any]) -> list[Item]:
        n = len(completions)
        if len(prompts) != n:
            raise DataError(f"got {len(prompts)} prompts for {n} completions")
        refs: list[Any] | None = None
        if self.rubric.mode == "reference":
            col = self.reference_column
            if col not in kwargs:
                passed = sorted(k for k in kwargs if k not in _TRAINER_KWARGS)
                raise ConfigError(
                    f"rubric {self.rubric.id!r} (reference) reads the reference answer from the dataset column "
                    f"{col!r}, which was not passed; columns passed: {passed} (set reference_column=)"
                )
            refs = list(kwargs[col])
            if len(refs) != n:
                raise DataError(f"column {col!r} has {len(refs)} values for {n} completions")
            for i, ref in enumerate(refs):
                if not isinstance(ref, str):
                    raise DataError(f"column {col!r}, completion {i}: the reference must be text, got {ref!r}")
        return [
            Item(prompt=prompt_text(p), response=completion_text(c), reference=refs[i] if refs is not None else None)
            for i, (p, c) in enumerate(zip(prompts, completions))
        ]

    def _plan(self, items: list[Item]) -> _Plan:
        judge = self.judge()
        if self.rubric.mode == "pairwise":
            groups: dict[str, list[int]] = {}
            for i, it in enumerate(items):
                groups.setdefault(it.prompt, []).append(i)
            pairs = [(a, b) for members in groups.values() for x, a in enumerate(members) for b in members[x + 1 :]]
            units = [Item(prompt=items[a].prompt, response_a=items[a].response, response_b=items[b].response)
                     for a, b in pairs]  # fmt: skip
        else:
            pairs, units = [], items
        plan = _Plan(units=units, keys=[[r.key for r in judge.requests(u)] for u in units], pairs=pairs)
        distinct = list(dict.fromkeys(k for keys in plan.keys for k in keys))
        for key in distinct:
            j = self._lookup(key)
            if j is not None:
                plan.found[key] = j
        plan.requests, plan.hits = len(distinct), len(plan.found)
        seen: set[tuple[str, ...]] = set()
        for unit, keys in zip(units, plan.keys):
            if any(k not in plan.found for k in keys) and tuple(keys) not in seen:
                seen.add(tuple(keys))
                plan.misses.append(unit)
        return plan

    def _finish(
        self, items: list[Item], plan: _Plan, new: list[Judgment], judge_s: float, kwargs: dict[str, Any]
    ) -> list[float | None]:
        self._keep(new)
        plan.found.update((j.key, j) for j in new)
        if self.rubric.mode == "pairwise":
            rewards, errors = self._pair_rewards(items, plan)
            keys = [[k for (a, b), ks in zip(plan.pairs, plan.keys) if i in (a, b) for k in ks] for i in range(len(items))]
        else:
            judged = [plan.found[ks[0]] for ks in plan.keys]
            rewards = [self._score(j) for j in judged]
            errors = [None if r is not None else (j.error or "unscored") for r, j in zip(rewards, judged)]
            keys = plan.keys
        self.last = [RewardRecord(prompt=it.prompt, completion=it.response or "", reward=r, error=e, keys=k)
                     for it, r, e, k in zip(items, rewards, errors, keys)]  # fmt: skip
        self.stats = _stats(items, rewards, plan, judge_s)
        log_metric, log_extra = kwargs.get("log_metric"), kwargs.get("log_extra")
        if callable(log_metric):
            for metric in ("abstain_rate", "score_mean", "score_std", "group_std", "cache_hit_rate"):
                value = getattr(self.stats, metric)
                if value is not None:  # no made-up figure either: a step without scores logs none
                    log_metric(f"rewards/{self.__name__}/{metric}", float(value))
        if callable(log_extra):
            log_extra(f"{self.__name__}_error", errors)
        return rewards

    def _score(self, j: Judgment) -> float | None:
        """A pointwise judgment's reward, or None when it is unscored."""
        if j.status != "scored":
            return None
        if self.scale == "unit":
            return j.overall
        values = j.extra.get("expected") or j.scores  # logprob-weighted where the plan read logprobs
        if not values:
            return None
        crit = self.rubric.criteria
        return sum(c.weight * float(values[c.name]) for c in crit) / sum(c.weight for c in crit)

    def _pair_rewards(self, items: list[Item], plan: _Plan) -> tuple[list[float | None], list[str | None]]:
        from judge.analysis._verdicts import combine_orders

        s = self.judge().scoring
        wins: list[list[float]] = [[] for _ in items]
        reasons: list[str | None] = [None] * len(items)
        for (a, b), unit, keys in zip(plan.pairs, plan.units, plan.keys):
            # A judgment from a shared cache may carry another item's id for the same texts.
            judged = [plan.found[k].model_copy(update={"item_id": unit.id}) for k in keys]
            v = combine_orders(judged, s.pairwise_policy, s.tie_threshold, self.judge().sampling.seed)
            if v.status != "scored" or v.p_a_mean is None:
                reasons[a] = reasons[b] = f"comparison unscored: {v.error}"
                continue
            wins[a].append(v.p_a_mean)
            wins[b].append(1.0 - v.p_a_mean)  # a scored probability (ties count half for both), never a marker
        rewards = [sum(w) / len(w) if w else None for w in wins]
        errors = [None if r is not None else (reasons[i] or "no other completion of the same prompt to compare with")
                  for i, r in enumerate(rewards)]  # fmt: skip
        return rewards, errors

    # ------------------------------------------------------------------------------------------
    # The cache

    def _store(self) -> Any:
        if self._store_path is None:
            return None
        store = getattr(self._local, "store", None)
        if store is None:
            from judge.runner._cache import JudgmentCache

            store = self._local.store = JudgmentCache(self._store_path)
        return store

    def _lookup(self, key: str) -> Judgment | None:
        j = self._memory.get(key) if self._memory is not None else None
        if j is None and (store := self._store()) is not None and (text := store.get(key)) is not None:
            j = Judgment.model_validate_json(text)
            if self._memory is not None:
                self._memory.put(j)
        return j

    def _keep(self, judgments: list[Judgment]) -> None:
        keep = [j for j in judgments if "error_kind" not in j.extra]  # failed or too long: asked again
        if self._memory is not None:
            for j in keep:
                self._memory.put(j)
        store = self._store()
        if store is not None and keep:
            store.put_many((j.key, j.model_dump_json()) for j in keep)

    def close(self) -> None:
        """Close this thread's SQLite cache connection (the judge is its owner's to close)."""
        store = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.__name__!r}, rubric={self.rubric.id!r}, scale={self.scale!r})"


class AsyncJudgeReward(JudgeReward):
    """The ``async`` judge reward (build it with :func:`areward_function`): judges through
    :meth:`Judge.ascore`, so TRL's event loop stays free while a served judge answers."""

    async def __call__(  # type: ignore[override]
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        """One reward per completion (None when unscored); awaited by TRL."""
        items = self._items(prompts, completions, kwargs)
        plan = self._plan(items)
        t0 = time.perf_counter()
        new = await self.judge().ascore(plan.misses) if plan.misses else []
        return self._finish(items, plan, new, time.perf_counter() - t0, kwargs)


def _pick_rubric(judge: Judge, rubric: str | Rubric | None) -> Rubric:
    if rubric is None:
        if len(judge.rubrics) == 1:
            return judge.rubrics[0]
        ids = [r.id for r in judge.rubrics]
        raise ConfigError(f"the judge has {len(ids)} rubrics {ids}: pass rubric= to name the one that rewards")
    if isinstance(rubric, Rubric):
        return rubric
    return next((r for r in judge.rubrics if r.id == rubric), None) or resolve_rubric(rubric)


def _stats(items: list[Item], rewards: list[float | None], plan: _Plan, judge_s: float) -> RewardStats:
    scored = [r for r in rewards if r is not None]
    groups: dict[str, list[float]] = {}
    for it, r in zip(items, rewards):
        if r is not None:
            groups.setdefault(it.prompt, []).append(r)
    spreads = [statistics.stdev(g) for g in groups.values() if len(g) > 1]
    n = len(rewards)
    return RewardStats(
        completions=n,
        scored=len(scored),
        abstain_rate=(n - len(scored)) / n if n else 0.0,
        score_mean=statistics.fmean(scored) if scored else None,
        score_std=statistics.stdev(scored) if len(scored) > 1 else None,
        group_std=statistics.fmean(spreads) if spreads else None,
        requests=plan.requests,
        cache_hits=plan.hits,
        cache_hit_rate=plan.hits / plan.requests if plan.requests else 0.0,
        judge_s=round(judge_s, 6),
    )


def reward_function(
    judge: Judge,
    rubric: str | Rubric | None = None,
    *,
    scale: Scale = "rubric",
    cache: bool | str | Path = True,
    cache_size: int = 10_000,
    name: str | None = None,
    reference_column: str = "reference",
) -> JudgeReward:
    """A TRL reward function (``fn(prompts, completions, **kwargs) -> list[float | None]``) backed by ``judge``.

    Args:
        judge: the judge (a ready backend or a named one, created on the first call).
        rubric: which of the judge's rubrics rewards (its only one by default); another rubric id,
            path or :class:`Rubric` is judged by the same backend and settings.
        scale: pointwise and reference rubrics: ``rubric`` (the rubric's own range, e.g. 1-5; every
            criterion must share it) or ``unit`` (the overall score in [0, 1]). Pairwise: always [0, 1].
        cache: True (in memory), False (none), or a SQLite file path (the runner's judgment cache,
            plus the in-memory one).
        cache_size: most judgments kept in memory.
        name: the function's ``__name__``, which TRL names its metrics after (``judge_<rubric id>``).
        reference_column: the dataset column holding the reference answer (reference rubrics).

    Returns:
        None for every completion whose judgment is unscored: see the module docstring for how TRL
        treats it.

    Raises:
        ConfigError: several rubrics and none named, a bad scale or cache size (before any model loads).
    """
    return JudgeReward(judge, rubric, scale=scale, cache=cache, cache_size=cache_size, name=name,
                       reference_column=reference_column)  # fmt: skip


def areward_function(judge: Judge, rubric: str | Rubric | None = None, **options: Any) -> AsyncJudgeReward:
    """:func:`reward_function` as an ``async`` callable (same options), for a served judge: TRL awaits it
    on its own event loop, and the judge answers in a worker thread (:meth:`Judge.ascore`)."""
    return AsyncJudgeReward(judge, rubric, **options)
