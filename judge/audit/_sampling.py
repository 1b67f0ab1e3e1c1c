"""Drawing judge decisions for human review: a stratified design with exact inclusion probabilities.

The population is every *decision* of a judgments file: a pointwise or reference judgment, or a
pair (its judgments in both orders combined into one verdict, :func:`judge.analysis.pair_verdicts`).
Each decision gets its risk flags and falls into one design cell:

- a **risk cell**, by its first flag in :data:`RISK_STRATA` order: ``injection_flag`` (the sanitiser
  would change its texts: verdict-shaped fragments, fake data boundaries, chat markup; or the
  judgment says so in ``extra.injection``), ``unscored``, ``swap_inconsistent`` (the two orders
  disagree), ``split_jury`` (jury votes not unanimous), ``low_margin`` (``extra.margin`` below the
  bar for some criterion), ``high_entropy`` (``extra.entropy`` / log(#values) above the bar),
  ``extreme_score`` (overall at the ends of the scale);
- otherwise the rubric's **rest cell**, named ``uniform`` (or ``coverage`` when the rubric's
  proportional share had to be raised so that every rubric, and so every criterion, is seen).

The budget (a count, or a fraction of the population) is split: ``1 - uniform_share`` of it over
the non-empty risk cells equally, the rest over the rubrics' rest cells in proportion to their size
(at least ``min_per_rubric`` each). Every cell then draws a simple random sample without
replacement of its size ``n_h`` from its ``N_h`` decisions with a seeded generator, so every
decision's inclusion probability is exactly ``n_h / N_h`` and never zero (a risk cell too small to
get one draw is merged into the rest cells). Horvitz-Thompson and Hájek weights are ``1 / π``.
Hand-picked items are added with ``stratum="handpicked"`` and no probability: estimates skip them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from judge.analysis._verdicts import combine_orders, pair_key
from judge.audit._records import RISK_STRATA, AuditSample, JudgeOutput, SamplingRun, sample_id_for, scope_key
from judge.core._errors import ConfigError
from judge.core._records import Item, Judgment, Message, RubricRef, stable_hash

__all__ = ["Decision", "SampleConfig", "SamplingResult", "decisions", "draw_sample", "judge_proxy", "judgment_scope", "prompt_version"]


class SampleConfig(BaseModel):
    """How an audit sample is drawn."""

    model_config = ConfigDict(extra="forbid")

    budget: float = Field(gt=0, description="Decisions to draw: a count (>= 1) or a fraction of the population (< 1).")
    seed: int = Field(default=0, description="Seed of every draw.")
    uniform_share: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Share of the budget for the rubrics' rest cells; the rest goes to risk cells."
    )
    min_per_rubric: int = Field(default=2, ge=1, description="Rest-cell draws per rubric at least (coverage).")
    margin_below: float = Field(default=0.2, ge=0.0, le=1.0, description="low_margin: a criterion's logprob margin below this.")
    entropy_above: float = Field(
        default=0.7, ge=0.0, le=1.0, description="high_entropy: a criterion's entropy / log(#values) above this."
    )
    extreme_within: float = Field(
        default=0.0, ge=0.0, lt=0.5, description="extreme_score: overall <= this or >= 1 - this."
    )
    split_jury_below: float = Field(default=1.0, gt=0.0, le=1.0, description="split_jury: jury agreement below this.")
    policy: str = Field(default="strict", description="How a pair's two orders combine (as in the job).")

    @model_validator(mode="after")
    def _budget_shape(self) -> "SampleConfig":
        if self.budget >= 1 and self.budget != int(self.budget):
            raise ValueError(f"budget must be a whole count (>= 1) or a fraction in (0, 1), got {self.budget}")
        return self


@dataclass
class Decision:
    """One unit of the sampling population."""

    key: str
    judgments: list[Judgment]
    output: JudgeOutput
    flags: list[str] = field(default_factory=list)

    @property
    def first(self) -> Judgment:
        return self.judgments[0]


@dataclass
class SamplingResult:
    """What a sampling run drew: its id, the samples and the design (per cell: N, n, π)."""

    run_id: str
    samples: list[AuditSample]
    cells: dict[str, dict[str, Any]]
    population: int
    run: SamplingRun


def judge_proxy(d: Decision) -> float:
    """The judge's value of a decision for prediction-powered estimates: overall score or P(A wins); 0.5 when unscored."""
    v = d.output.p_a if d.first.kind == "pairwise" else d.output.overall
    return 0.5 if v is None else float(v)


def _flags_of(j: Judgment, cfg: SampleConfig) -> list[str]:
    out = []
    margins = j.extra.get("margin")
    if isinstance(margins, dict) and margins and min(margins.values()) < cfg.margin_below:
        out.append("low_margin")
    ent, dist = j.extra.get("entropy"), j.extra.get("distribution")
    if isinstance(ent, dict) and isinstance(dist, dict):
        norm = [e / math.log(len(dist[k])) for k, e in ent.items() if k in dist and len(dist[k]) > 1]
        if norm and max(norm) > cfg.entropy_above:
            out.append("high_entropy")
    if j.kind != "pairwise" and j.overall is not None and (
        j.overall <= cfg.extreme_within or j.overall >= 1 - cfg.extreme_within
    ):
        out.append("extreme_score")
    if j.extra.get("injection"):
        out.append("injection_flag")
    return out


def decisions(
    judgments: Iterable[Judgment], cfg: SampleConfig, jury_agreement: dict[str, float] | None = None
) -> list[Decision]:
    """The sampling population of a judgments file, with each decision's risk flags (file order)."""
    js = list(judgments)
    out: list[Decision] = []
    groups: dict[str, list[Judgment]] = defaultdict(list)
    for j in js:
        if j.kind == "pairwise":
            groups[pair_key(j)].append(j)
    seen: set[str] = set()
    for j in js:
        if j.kind != "pairwise":
            flags = _flags_of(j, cfg) + (["unscored"] if j.status == "unscored" else [])
            out.append(Decision(j.key, [j], JudgeOutput(
                status=j.status, scores=j.scores, overall=j.overall, rationale=j.rationale, error=j.error,
                raw_output=j.raw_output), flags))
            continue
        pk = pair_key(j)
        if pk in seen:
            continue
        seen.add(pk)
        # A reopened job may hold an order twice: the later judgment counts (as in pair_verdicts).
        group = sorted({g.order: g for g in groups[pk]}.values(), key=lambda g: 0 if g.order == "AB" else 1)
        v = combine_orders(group, cfg.policy)  # type: ignore[arg-type]
        flags = [f for g in group for f in _flags_of(g, cfg)]
        if v.status == "unscored":
            flags.append("unscored")
        if v.consistent is False:
            flags.append("swap_inconsistent")
        if jury_agreement is not None and jury_agreement.get(j.item_id, 1.0) < cfg.split_jury_below:
            flags.append("split_jury")
        out.append(Decision(group[0].key, group, JudgeOutput(
            status=v.status, winner=v.winner, p_a=v.p_a_mean, rationale=group[0].rationale, error=v.error,
            raw_output=group[0].raw_output), flags))
    if jury_agreement is not None:
        for d in out:
            if d.first.kind != "pairwise" and jury_agreement.get(d.first.item_id, 1.0) < cfg.split_jury_below:
                d.flags.append("split_jury")
    for d in out:
        d.flags = sorted(set(d.flags), key=RISK_STRATA.index)
    return out


def prompt_version(rubric: Any) -> str:
    """A fingerprint of the prompt template: the messages rendered for a fixed probe item.

    It changes when the template or the rubric's wording changes, which is what voids a gate pass.
    """
    from judge.inputs._prompts import render_messages

    probe = Item(id="probe", prompt="P", response="R", response_a="A", response_b="B", reference="F")
    msgs = render_messages(rubric, probe, "AB" if rubric.mode == "pairwise" else None)
    return "tpl-" + stable_hash([m.model_dump() for m in msgs])[:16]


def _judge_input(j: Judgment, item: Item | None, rubric: Any) -> tuple[list[Message], bool]:
    """The judge's messages rebuilt from item and rubric, and whether their hash matches the judgment's.

    A judgment with a trace says how its messages were rendered (sanitised or not, the prefill);
    for older files the likely renderings are tried and the one whose hash matches is kept.
    """
    if item is None or rubric is None:
        return [], False
    from judge.inputs._prompts import prompt_hash, render_messages

    trace = getattr(j, "trace", None)
    if trace is not None:
        candidates = [(trace.sanitize, trace.prefill)]
    else:
        prefills: list[str | None] = [None]
        try:
            from judge.core._config import JobConfig
            from judge.scoring import score_plan

            plan = score_plan(rubric, JobConfig(data=Path("-"), output=Path("-")), tokenizer=None)
            prefills.append(plan.prefill)
        except Exception:  # fewer candidates only; exactness is checked by the hash below
            pass
        candidates = [(s, p) for s in (True, False) for p in prefills]
    first: list[Message] | None = None
    for sanitize, prefill in candidates:
        msgs = render_messages(rubric, item, j.order, sanitize=sanitize, prefill=prefill)
        first = first or msgs
        if prompt_hash(msgs) == j.prompt_hash:
            return msgs, True
    return first or [], False


def _prompt_version(j: Judgment, rubric: Any) -> str:
    trace = getattr(j, "trace", None)
    if trace is not None:
        return f"v{trace.prompt_version}"
    return prompt_version(rubric) if rubric is not None else "unknown"


def judgment_scope(j: Judgment, rubric: Any | None = None) -> str:
    """The gate scope a judgment's feedback belongs to (pass it to :func:`judge.audit.gate` as ``scopes``)."""
    return scope_key(j.judge.model_hash, j.rubric.hash, _prompt_version(j, rubric))


def _injection(item: Item | None, rubric: Any) -> bool:
    if item is None or rubric is None:
        return False
    from judge.inputs._prompts import neutralize_imitations

    texts = [item.prompt, item.response, item.response_a, item.response_b, item.reference]
    return any(t is not None and neutralize_imitations(t, rubric) != t for t in texts)


def _allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Largest-remainder proportional allocation of ``total`` over cells, capped at each size."""
    n = sum(sizes.values())
    if n == 0 or total <= 0:
        return {k: 0 for k in sizes}
    raw = {k: total * v / n for k, v in sizes.items()}
    alloc = {k: min(sizes[k], int(math.floor(r))) for k, r in raw.items()}
    for k in sorted(sizes, key=lambda k: (-(raw[k] - math.floor(raw[k])), k)):
        if sum(alloc.values()) >= total:
            break
        if alloc[k] < sizes[k]:
            alloc[k] += 1
    return alloc


def _share_out(alloc: dict[str, int], sizes: dict[str, int], left: int) -> None:
    """Add ``left`` draws one at a time over the cells (in name order) that still have room."""
    while left > 0:
        open_ = [k for k in sizes if alloc[k] < sizes[k]]
        if not open_:
            return
        for k in sorted(open_):
            if left == 0:
                return
            alloc[k] += 1
            left -= 1


def _design(ds: list[Decision], cfg: SampleConfig) -> tuple[dict[str, list[Decision]], dict[str, int], dict[str, str]]:
    """Cells (name -> decisions), their draw sizes and their stratum names."""
    N = len(ds)
    total = min(N, int(cfg.budget) if cfg.budget >= 1 else max(1, round(cfg.budget * N)))
    risk: dict[str, list[Decision]] = defaultdict(list)
    rest: dict[str, list[Decision]] = defaultdict(list)
    for d in ds:
        (risk[d.flags[0]] if d.flags else rest["rest:" + d.first.rubric.hash]).append(d)
    while True:  # merge risk cells into rest until every cell can get one draw
        if len(rest) + len(risk) <= total or not risk:
            break
        smallest = min(risk, key=lambda k: (len(risk[k]), k))
        for d in risk.pop(smallest):
            rest["rest:" + d.first.rubric.hash].append(d)
    if len(rest) + len(risk) > total:
        raise ConfigError(
            f"audit budget {cfg.budget} gives {total} draws but the population has {len(rest)} rubrics; "
            f"raise --budget to at least {len(rest)} so every judgment has a non-zero inclusion probability"
        )
    mins = {k: min(cfg.min_per_rubric, len(v)) for k, v in rest.items()}
    if sum(mins.values()) + len(risk) > total:  # too tight for the coverage minimum: one draw per rubric
        mins = {k: 1 for k in rest}
    risk_budget = round((1 - cfg.uniform_share) * total)
    risk_budget = max(len(risk), min(risk_budget, total - sum(mins.values()), sum(len(v) for v in risk.values())))
    alloc: dict[str, int] = {k: 1 for k in risk}
    _share_out(alloc, {k: len(v) for k, v in risk.items()}, risk_budget - len(risk))
    rest_total = total - sum(alloc.values())
    names = {k: k for k in risk}
    prop = _allocate({k: len(v) for k, v in rest.items()}, rest_total)
    for k in rest:
        names[k] = "coverage" if prop[k] < mins[k] else "uniform"
        alloc[k] = max(prop[k], mins[k])
    while sum(alloc[k] for k in rest) > rest_total:  # the minimums overshot: take from the largest share
        k = max((k for k in rest if alloc[k] > mins[k]), key=lambda k: (alloc[k] / len(rest[k]), k))
        alloc[k] -= 1
    # Budget left when cells are exhausted goes to any cell with room (risk cells first).
    _share_out(alloc, {**{k: len(v) for k, v in risk.items()}, **{k: len(v) for k, v in rest.items()}},
               total - sum(alloc.values()))
    return {**risk, **rest}, alloc, names


def draw_sample(
    judgments: Iterable[Judgment],
    cfg: SampleConfig,
    *,
    items: dict[str, Item] | None = None,
    rubrics: dict[str, Any] | None = None,
    jury_agreement: dict[str, float] | None = None,
    handpicked: Iterable[str] = (),
) -> SamplingResult:
    """Draw an audit sample from a judgments file's decisions.

    Args:
        judgments: the judgments.
        cfg: budget, seed and risk thresholds.
        items: the judged items by id (to record the judge's exact input and detect injections).
        rubrics: the rubrics by content hash (for the input, the level descriptions and the prompt version).
        jury_agreement: per item id, the jury's agreement (share of votes for its verdict).
        handpicked: item ids to add for review outside the design (never in the estimates).
    """
    items, rubrics = items or {}, rubrics or {}
    ds = decisions(judgments, cfg, jury_agreement)
    for d in ds:
        if _injection(items.get(d.first.item_id), rubrics.get(d.first.rubric.hash)) and "injection_flag" not in d.flags:
            d.flags.insert(0, "injection_flag")
    if not ds:
        raise ConfigError("no judgments to sample from")
    ds.sort(key=lambda d: d.key)  # the draw depends on the population, not on the file's order
    cells, alloc, names = _design(ds, cfg)
    run_id = "run-" + stable_hash([cfg.model_dump(), [d.key for d in ds], sorted(handpicked)])[:12]
    rng = np.random.default_rng(cfg.seed)
    picked: list[tuple[Decision, str, str, float | None]] = []
    design: dict[str, dict[str, Any]] = {}
    for cell in sorted(cells):
        members, n = cells[cell], alloc[cell]
        idx = sorted(rng.choice(len(members), size=n, replace=False).tolist()) if n else []
        pi = n / len(members)
        picked += [(members[i], cell, names[cell], pi) for i in idx]
        scopes: dict[str, dict[str, float]] = {}
        for d in members:
            j = d.first
            sc = scopes.setdefault(
                scope_key(j.judge.model_hash, j.rubric.hash, _prompt_version(j, rubrics.get(j.rubric.hash))),
                {"N": 0, "f_sum": 0.0, "f_sumsq": 0.0},
            )
            f = judge_proxy(d)
            sc["N"] += 1
            sc["f_sum"] += f
            sc["f_sumsq"] += f * f
        design[cell] = {"stratum": names[cell], "N": len(members), "n": n, "inclusion_prob": pi, "scopes": scopes}
    chosen = {p[0].key for p in picked}
    for item_id in handpicked:
        hits = [d for d in ds if d.first.item_id == item_id]
        if not hits:
            raise ConfigError(f"--add {item_id!r}: no judgment of that item in the judgments file")
        picked += [(d, "", "handpicked", None) for d in hits if d.key not in chosen]
    samples = [_to_sample(d, cell, stratum, pi, run_id, cfg.seed, len(ds), items, rubrics) for d, cell, stratum, pi in picked]
    run = SamplingRun(run_id=run_id, seed=cfg.seed, config=cfg.model_dump(), population=len(ds), cells=design)
    return SamplingResult(run_id=run_id, samples=samples, cells=design, population=len(ds), run=run)


def _to_sample(
    d: Decision, cell: str, stratum: str, pi: float | None, run_id: str, seed: int, population: int,
    items: dict[str, Item], rubrics: dict[str, Any],
) -> AuditSample:
    j = d.first
    item, rubric = items.get(j.item_id), rubrics.get(j.rubric.hash)
    msgs, exact = _judge_input(j, item, rubric)
    return AuditSample(
        sample_id=sample_id_for(d.key, j.item_id, run_id),
        run_id=run_id,
        judgment_key=d.key,
        judgment_keys=[g.key for g in d.judgments],
        item_id=j.item_id,
        rubric=RubricRef.model_validate(j.rubric.model_dump()),
        rubric_def=rubric.model_dump(mode="json") if rubric is not None else None,
        kind=j.kind,
        stratum=stratum,  # type: ignore[arg-type]
        cell=cell,
        flags=d.flags,
        inclusion_prob=pi,
        population=population,
        judge_input=msgs,
        judge_input_exact=exact,
        item=item,
        judge_output=d.output,
        judge_fingerprint=j.judge.model_hash,
        rubric_hash=j.rubric.hash,
        prompt_version=_prompt_version(j, rubric),
        seed=seed,
    )
