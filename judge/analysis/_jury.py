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
Results go to ``<stem>.jury.jsonl`` (one :class:`JuryVerdict` per item, with each member's
judgment keys) and ``<stem>.jury.summary.json``. This module aggregates; running the members'
jobs (in process or on the Ray pool) is :func:`judge.runner.run_jury`.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from judge.core._errors import ConfigError
from judge.core._config import JobConfig, JuryMember
from judge.analysis._metrics import krippendorff_alpha
from judge.core._records import JuryVerdict

__all__ = ["JurySummary", "JuryVerdict", "aggregate", "jury_alpha", "jury_paths", "member_config", "member_outputs"]

Aggregate = Literal["majority", "mean", "weighted"]


def member_outputs(output: str | Path) -> Path:
    """The directory holding each member's judgments for a jury job writing ``output``."""
    p = Path(output)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + ".jury")


def jury_paths(output: str | Path) -> tuple[Path, Path]:
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
    keys: Mapping[str, list[str]] | None = None,
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
        keys: member -> the keys of the judgments its vote comes from (kept for tracing).
    """
    w = {m: (weights.get(m, 1.0) if how == "weighted" else 1.0) for m in set(votes) | set(values)}
    base = dict(
        item_id=item_id,
        kind=kind,
        aggregate=how,
        votes=dict(votes),
        values=dict(values),
        weights=w,
        keys={m: list(k) for m, k in (keys or {}).items()},
    )
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
