"""Juries: several judges on the same items, aggregated into one verdict per item.

Members differ by model, rubric or scoring settings (``jury.members`` in the job config). Each
member runs as an ordinary job (its judgments under ``<stem>.jury/<member>.jsonl``, with their own
resume and cache); members that share a model share one loaded backend, and a backend is closed
before the next model loads, so one engine is alive at a time. Per item, the members' verdicts are
aggregated by:

- ``majority``: pairs: the most voted of A / B / tie (an 'inconsistent' member votes tie; a split
  between A and B at the top is a tie, never a silent pick). Scores: the median overall score.
- ``mean``: pairs: the mean P(A wins), decided with the job's tie threshold. Scores: the mean
  overall score.
- ``weighted``: the same as mean (scores) or a vote (pairs), with each member's ``weight``; fit the
  weights on a labelled set with ``judgeloop eval --calibrate``.

Overall scores are the rubric's weighted mean of criteria normalised to [0, 1], so members with
different rubrics or scales aggregate on one scale. Agreement between members is reported as
Krippendorff's alpha (nominal over pair verdicts, interval over P(A wins) or overall scores).
Results go to ``<stem>.jury.jsonl`` (one :class:`JuryVerdict` per item) and
``<stem>.jury.summary.json``.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from judge.core._errors import ConfigError
from judge.core._io import atomic_write
from judge.core._config import JobConfig, JuryMember
from judge.analysis._metrics import krippendorff_alpha
from judge.inputs._rubric import Rubric, resolve_rubric

__all__ = ["JurySummary", "JuryVerdict", "aggregate", "jury_alpha", "member_config", "member_outputs", "run_jury"]

Aggregate = Literal["majority", "mean", "weighted"]


class JuryVerdict(BaseModel):
    """One item's verdict from a jury."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    item_id: str
    kind: Literal["pairwise", "score"]
    aggregate: Aggregate
    votes: dict[str, str | None] = Field(
        default_factory=dict, description="Pairs: each member's final verdict (None = unscored)."
    )
    values: dict[str, float | None] = Field(
        default_factory=dict, description="Each member's P(A wins) (pairs) or overall score in [0, 1]."
    )
    weights: dict[str, float] = Field(default_factory=dict, description="The weights used.")
    winner: Literal["A", "B", "tie"] | None = Field(default=None, description="Pairs: the jury's verdict.")
    value: float | None = Field(default=None, description="Aggregated P(A wins) or overall score.")
    agreement: float | None = Field(default=None, description="Share of (weighted) votes for the verdict.")
    status: Literal["scored", "unscored"]
    error: str | None = None


def member_outputs(output: str | Path) -> Path:
    """The directory holding each member's judgments for a jury job writing ``output``."""
    p = Path(output)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + ".jury")


def _jury_paths(output: str | Path) -> tuple[Path, Path]:
    p = Path(output)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + ".jury.jsonl"), p.with_name(stem + ".jury.summary.json")


def member_config(cfg: JobConfig, member: JuryMember) -> JobConfig:
    """The ordinary job a jury member runs."""
    if member.rubric is None and len(cfg.rubrics) != 1:
        raise ConfigError(
            f"jury member {member.name!r} names no rubric and the job lists {len(cfg.rubrics)} "
            f"({cfg.rubrics}); give the member a rubric or list exactly one"
        )
    return cfg.model_copy(
        update={
            "judge": member.judge or cfg.judge,
            "rubrics": [member.rubric or cfg.rubrics[0]],
            "scoring": member.scoring or cfg.scoring,
            "output": member_outputs(cfg.output) / f"{member.name}.jsonl",
            "jury": None,
        }
    )


def _decide(p: float, threshold: float) -> Literal["A", "B", "tie"]:
    if abs(p - 0.5) <= threshold:
        return "tie"
    return "A" if p > 0.5 else "B"


def aggregate(
    kind: Literal["pairwise", "score"],
    item_id: str,
    votes: Mapping[str, str | None],
    values: Mapping[str, float | None],
    weights: Mapping[str, float],
    how: Aggregate,
    tie_threshold: float = 0.05,
) -> JuryVerdict:
    """One item's jury verdict from its members' verdicts (pairs) or scores.

    Args:
        kind: ``pairwise`` (votes are A/B/tie/inconsistent, values P(A wins)) or ``score``.
        item_id: the item.
        votes: member -> final pair verdict (None = unscored); ignored for scores.
        values: member -> P(A wins) or overall score (None = unscored).
        weights: member -> weight (``weighted`` only; others weigh every member 1).
        how: majority, mean or weighted.
        tie_threshold: pairs, mean: |P(A wins) - 0.5| at or below it is a tie.
    """
    w = {m: (weights.get(m, 1.0) if how == "weighted" else 1.0) for m in set(votes) | set(values)}
    base = dict(item_id=item_id, kind=kind, aggregate=how, votes=dict(votes), values=dict(values), weights=w)
    if kind == "pairwise":
        if how == "mean":
            ps = [p for p in values.values() if p is not None]
            if not ps:
                return JuryVerdict(status="unscored", error="no member has P(A wins) for this pair", **base)
            p = sum(ps) / len(ps)
            win = _decide(p, tie_threshold)
            agree = sum(1 for v in votes.values() if v == win) / max(1, sum(1 for v in votes.values() if v))
            return JuryVerdict(status="scored", winner=win, value=round(p, 6), agreement=round(agree, 4), **base)
        tally: Counter[str] = Counter()
        for m, v in votes.items():
            if v is None:
                continue
            tally["tie" if v == "inconsistent" else v] += w[m]
        total = sum(tally.values())
        if total <= 0:
            return JuryVerdict(status="unscored", error="no member scored this pair", **base)
        top = max(tally.values())
        leaders = sorted(k for k, c in tally.items() if c == top)
        win = leaders[0] if len(leaders) == 1 else "tie"  # a split at the top is a tie, not a pick
        ps = [(values[m], w[m]) for m in values if values[m] is not None]
        p = sum(x * ww for x, ww in ps) / sum(ww for _, ww in ps) if ps and sum(ww for _, ww in ps) > 0 else None
        return JuryVerdict(
            status="scored",
            winner=win,  # type: ignore[arg-type]
            value=None if p is None else round(p, 6),
            agreement=round(tally.get(win, 0.0) / total, 4),
            **base,
        )
    scored = [(values[m], w[m]) for m in values if values[m] is not None]
    if not scored:
        return JuryVerdict(status="unscored", error="no member scored this item", **base)
    if how == "majority":
        value = statistics.median(v for v, _ in scored)  # the ordinal analogue of a majority
    else:
        tw = sum(ww for _, ww in scored)
        if tw <= 0:
            return JuryVerdict(status="unscored", error="the scoring members all have weight 0", **base)
        value = sum(v * ww for v, ww in scored) / tw
    return JuryVerdict(status="scored", value=round(float(value), 6), **base)


def jury_alpha(kind: Literal["pairwise", "score"], per_member: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Krippendorff's alpha between members over the items they scored.

    Args:
        kind: ``pairwise`` or ``score``.
        per_member: member -> item id -> ``(vote, value)`` (vote None for scores).
    """
    members = sorted(per_member)
    items = sorted({i for m in members for i in per_member[m]})
    out: dict[str, Any] = {"members": members, "items": len(items)}
    if kind == "pairwise":
        code = {"A": 0.0, "B": 1.0, "tie": 2.0}
        nominal = [[code.get(per_member[m].get(i, (None, None))[0] or "", math.nan) for i in items] for m in members]
        out["nominal_verdicts"] = _clean(krippendorff_alpha(nominal, "nominal")) if items else None
    values = [[_nan(per_member[m].get(i, (None, None))[1]) for i in items] for m in members]
    key = "interval_p_a" if kind == "pairwise" else "interval_scores"
    out[key] = _clean(krippendorff_alpha(values, "interval")) if items else None
    if kind == "score":
        out["ordinal_scores"] = _clean(krippendorff_alpha(values, "ordinal")) if items else None
    return out


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _clean(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(x, 4)


@dataclass
class JurySummary:
    """What a jury job did."""

    output: str
    kind: str
    aggregate: str
    members: dict[str, Any] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    alpha: dict[str, Any] = field(default_factory=dict)
    items: int = 0
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def table(self) -> str:
        lines = [f"jury  {self.output}  ({self.kind}; aggregate {self.aggregate}; {self.items} items)"]
        for name, m in self.members.items():
            lines.append(
                f"  member {name:<16} rubric {m['rubric']:<24} judgments {m['judgments']:>5}  "
                f"unscored {m['unscored']:>4}  weight {m['weight']:.3g}  {m['judgments_per_s']:.2f} judgments/s"
            )
        if self.verdicts:
            lines.append("  verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items())))
        alpha = {k: v for k, v in self.alpha.items() if k not in ("members", "items")}
        lines.append("  Krippendorff's alpha: " + ", ".join(f"{k} {v if v is not None else 'n/a'}" for k, v in alpha.items()))
        lines.append(f"  wall {self.wall_s:.1f}s")
        return "\n".join(lines)


BackendSource = Any  # a Backend, or a zero-argument factory returning one


def _member_values(mcfg: JobConfig, rubric: Rubric) -> dict[str, tuple[str | None, float | None]]:
    """item id -> (final pair verdict or None, P(A wins) or overall) for one member's finished job."""
    from judge.analysis._verdicts import read_judgments, read_pair_verdicts, verdicts_path

    out: dict[str, tuple[str | None, float | None]] = {}
    if rubric.mode == "pairwise":
        for v in read_pair_verdicts(verdicts_path(mcfg.output)):
            if v.rubric.hash != rubric.content_hash:
                continue
            out[v.item_id] = (v.winner if v.status == "scored" else None, v.p_a_mean if v.status == "scored" else None)
        return out
    for j in read_judgments(mcfg.output):
        if j.rubric.hash != rubric.content_hash:
            continue
        out[j.item_id] = (None, j.overall if j.status == "scored" else None)
    return out


def run_jury(
    cfg: JobConfig,
    backends: Mapping[str, BackendSource] | None = None,
    progress: bool = True,
) -> JurySummary:
    """Run every member of ``cfg.jury`` and aggregate their verdicts per item.

    Args:
        cfg: a job with ``jury`` set.
        backends: member name -> ready backend or factory (tests, or models already loaded); other
            members get the configured backend, shared between members with the same judge.
        progress: progress bars for the member jobs.

    Raises:
        ConfigError: no jury, or members whose rubrics mix pairwise with scoring modes.
    """
    from judge.backends._base import create_backend
    from judge.runner._engine import run_job
    from judge.backends._models import resolve_model

    if cfg.jury is None:
        raise ConfigError("run_jury needs a job config with 'jury'")
    t0 = time.perf_counter()
    members = cfg.jury.members
    mcfgs = {m.name: member_config(cfg, m) for m in members}
    rubrics = {name: resolve_rubric(c.rubrics[0]) for name, c in mcfgs.items()}
    kinds = {"pairwise" if r.mode == "pairwise" else "score" for r in rubrics.values()}
    if len(kinds) != 1:
        modes = {n: r.mode for n, r in rubrics.items()}
        raise ConfigError(f"jury members must all judge pairs or all score responses, got {modes}")
    kind: Literal["pairwise", "score"] = kinds.pop()  # type: ignore[assignment]
    given = dict(backends or {})
    summaries: dict[str, Any] = {}
    # Members sharing a judge share one backend; one model is loaded at a time.
    groups: dict[str, list[JuryMember]] = {}
    for m in members:
        if m.name in given:
            groups.setdefault("given:" + m.name, []).append(m)
        else:
            groups.setdefault(mcfgs[m.name].judge.model_dump_json(), []).append(m)
    for key, group in groups.items():
        if key.startswith("given:"):
            for m in group:
                summaries[m.name] = run_job(mcfgs[m.name], backend=given[m.name], progress=progress)
            continue
        jc = mcfgs[group[0].name].judge
        shared = _Shared(lambda jc=jc: create_backend(
            jc.backend, model=resolve_model(jc.model) if jc.backend != "openai" else jc.model, **jc.options
        ))
        try:
            for m in group:
                summaries[m.name] = run_job(mcfgs[m.name], backend=shared, progress=progress)
        finally:
            shared.close_now()  # before the next group's model loads
    per_member = {name: _member_values(mcfgs[name], rubrics[name]) for name in mcfgs}
    weights = {m.name: m.weight for m in members}
    items = sorted({i for vals in per_member.values() for i in vals})
    verdicts = []
    for item_id in items:
        votes = {name: per_member[name].get(item_id, (None, None))[0] for name in mcfgs}
        values = {name: per_member[name].get(item_id, (None, None))[1] for name in mcfgs}
        verdicts.append(
            aggregate(kind, item_id, votes, values, weights, cfg.jury.aggregate, cfg.scoring.tie_threshold)
        )
    out_path, summary_path = _jury_paths(cfg.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_path, "".join(v.model_dump_json() + "\n" for v in verdicts))
    summary = JurySummary(
        output=str(out_path),
        kind=kind,
        aggregate=cfg.jury.aggregate,
        items=len(items),
        members={
            name: {
                "rubric": rubrics[name].id,
                "judge": mcfgs[name].judge.model,
                "output": str(mcfgs[name].output),
                "judgments": summaries[name].judgments,
                "unscored": summaries[name].unscored,
                "weight": weights[name],
                "judgments_per_s": round(summaries[name].judgments_per_s, 3),
            }
            for name in mcfgs
        },
        verdicts=dict(Counter((v.winner or "unscored") if kind == "pairwise" else v.status for v in verdicts)),
        alpha=jury_alpha(kind, per_member),
    )
    summary.wall_s = time.perf_counter() - t0
    atomic_write(summary_path, json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


class _Shared:
    """One backend for the members of a group: created on first use, closed by the jury, not by
    each member's job (a job closes only the backends it owns)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._backend: Any = None

    def _get(self) -> Any:
        if self._backend is None:
            self._backend = self._factory()
        return self._backend

    @property
    def name(self) -> str:
        return self._get().name

    def info(self) -> Any:
        return self._get().info()

    def generate(self, prompts: Any, params: Any) -> Any:
        return self._get().generate(prompts, params)

    def close(self) -> None:
        pass  # the jury closes it after the last member that shares it

    def close_now(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


