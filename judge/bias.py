"""Bias diagnostics of a judge, reported with every job.

- **Position bias** (pairwise): how often the response shown first wins among decisive per-order
  verdicts (0.5 is unbiased), the mean probability the judge gives the first-shown response, and
  the swap-inconsistency rate: the share of pairs whose verdict changes when the order is swapped.
- **Length bias**: how often the longer response wins a decided pair (pairwise), and the Spearman
  correlation between score and response length (pointwise). Read them next to the human rate on
  the same data (``judgeloop eval``): a longer answer is often the better one.
- **Self-preference**: when an item's ``meta`` names the model that generated a response
  (``generator`` for pointwise items, ``generator_a`` / ``generator_b`` for pairs) and that model
  is the judge, how the judge treats its own responses: their win rate against another model's,
  or their mean score against other responses' mean.

Lengths are in characters of the response text.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from judge.metrics import spearman
from judge.records import Judgment
from judge.rubric import Rubric

if TYPE_CHECKING:
    from judge.config import JobConfig
    from judge.verdicts import PairVerdict

__all__ = ["diagnostics", "item_features", "length_bias", "position_bias", "self_preference"]


def _name(x: Any) -> str:
    return Path(str(x).rstrip("/")).name.lower()


def item_features(cfg: "JobConfig", rubrics: list[Rubric]) -> dict[str, dict[str, Any]]:
    """Lengths and generator names of the job's items, by item id (reads the dataset again)."""
    from judge.engine import JobSummary, iter_items

    feats: dict[str, dict[str, Any]] = {}
    for item in iter_items(cfg, rubrics, [], JobSummary(output="")):
        feats[item.id] = features_of(item.response, item.response_a, item.response_b, item.meta)
    return feats


def features_of(response: str | None, a: str | None, b: str | None, meta: dict[str, Any]) -> dict[str, Any]:
    """The features the diagnostics use, for one item."""
    return {
        "len": len(response) if response is not None else None,
        "len_a": len(a) if a is not None else None,
        "len_b": len(b) if b is not None else None,
        "gen": meta.get("generator"),
        "gen_a": meta.get("generator_a"),
        "gen_b": meta.get("generator_b"),
    }


def _rate(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def position_bias(judgments: Iterable[Judgment], verdicts: Iterable["PairVerdict"]) -> dict[str, Any]:
    """First-shown win rate, mean P(first shown wins) and swap-inconsistency rate."""
    decisive = first_won = 0
    p_first: list[float] = []
    for j in judgments:
        if j.kind != "pairwise" or j.status != "scored" or j.order is None:
            continue
        shown_first = "A" if j.order == "AB" else "B"  # in the item's terms
        if j.winner in ("A", "B"):
            decisive += 1
            first_won += j.winner == shown_first
        p = j.extra.get("p_a")
        if isinstance(p, (int, float)) and j.extra.get("p_source") != "verdict":
            # p_a is P(the item's A wins); the first shown is the item's B in order BA.
            p_first.append(float(p) if j.order == "AB" else 1.0 - float(p))
    both = [v for v in verdicts if v.consistent is not None]
    return {
        "n_verdicts": decisive,
        "first_shown_win_rate": _rate(first_won, decisive),
        "mean_p_first_shown": round(sum(p_first) / len(p_first), 4) if p_first else None,
        "n_pairs_both_orders": len(both),
        "swap_inconsistency_rate": _rate(sum(1 for v in both if not v.consistent), len(both)),
    }


def length_bias(
    rubric: Rubric,
    judgments: Iterable[Judgment],
    verdicts: Iterable["PairVerdict"],
    features: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Longer-response win rate (pairwise) or Spearman(score, length) (pointwise)."""
    if rubric.mode == "pairwise":
        n = longer = 0
        for v in verdicts:
            f = features.get(v.item_id)
            if v.winner not in ("A", "B") or f is None or f["len_a"] is None or f["len_a"] == f["len_b"]:
                continue
            n += 1
            longer += v.winner == ("A" if f["len_a"] > f["len_b"] else "B")
        return {"n_pairs": n, "longer_win_rate": _rate(longer, n)}
    xs, ys = [], []
    for j in judgments:
        f = features.get(j.item_id)
        if j.status != "scored" or j.overall is None or f is None or f["len"] is None:
            continue
        xs.append(j.overall)
        ys.append(f["len"])
    rho = spearman(xs, ys) if len(xs) >= 2 else math.nan
    return {"n_scores": len(xs), "score_length_spearman": None if math.isnan(rho) else round(rho, 4)}


def self_preference(
    rubric: Rubric,
    judgments: Iterable[Judgment],
    verdicts: Iterable["PairVerdict"],
    features: dict[str, dict[str, Any]],
    judge_names: Iterable[str],
) -> dict[str, Any]:
    """How the judge treats responses its own model generated (needs generator names in ``meta``)."""
    names = {_name(n) for n in judge_names if n}
    if rubric.mode == "pairwise":
        n = own_won = 0
        for v in verdicts:
            f = features.get(v.item_id)
            if f is None or v.winner not in ("A", "B", "tie"):
                continue
            own_a = f["gen_a"] is not None and _name(f["gen_a"]) in names
            own_b = f["gen_b"] is not None and _name(f["gen_b"]) in names
            if own_a == own_b:
                continue
            n += 1
            own_won += v.winner == ("A" if own_a else "B")
        return {"n": n, "own_win_rate": _rate(own_won, n)}
    own, other = [], []
    for j in judgments:
        f = features.get(j.item_id)
        if j.status != "scored" or j.overall is None or f is None or f["gen"] is None:
            continue
        (own if _name(f["gen"]) in names else other).append(j.overall)
    return {
        "n": len(own),
        "own_mean": round(sum(own) / len(own), 4) if own else None,
        "other_mean": round(sum(other) / len(other), 4) if other else None,
        "n_other": len(other),
    }


def diagnostics(
    rubric: Rubric,
    judgments: list[Judgment],
    verdicts: list["PairVerdict"],
    features: dict[str, dict[str, Any]],
    judge_names: Iterable[str],
) -> dict[str, Any]:
    """All diagnostics that apply to ``rubric``'s mode."""
    out: dict[str, Any] = {"length": length_bias(rubric, judgments, verdicts, features)}
    if rubric.mode == "pairwise":
        out["position"] = position_bias(judgments, verdicts)
    out["self_preference"] = self_preference(rubric, judgments, verdicts, features, list(judge_names))
    return out
