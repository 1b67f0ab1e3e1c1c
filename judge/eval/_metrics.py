"""Agreement of a judge's verdicts with human labels: the numbers of an eval report.

Every headline number comes as ``{"value", "ci95", "undefined"}``: the statistic on the whole set,
its seeded percentile-bootstrap 95% interval, and how many bootstrap resamples left it undefined
(a kappa of a resample with one category, a correlation of a constant): those are counted, never
silently dropped. Every ``meta`` key with a few distinct scalar values gets a per-subset breakdown.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable

import numpy as np

from judge.analysis._metrics import bootstrap_ci, cohen_kappa, confusion_matrix, kendall_tau, pearson, spearman
from judge.core._labels import HUMAN_LABELS, human_label

__all__ = ["PAIR_COLS", "PAIR_ROWS", "pair_prediction", "pairwise_metrics", "pointwise_metrics"]

#: Rows of the pairwise confusion matrix (human labels) and its columns (judge outcomes).
PAIR_ROWS = list(HUMAN_LABELS)
PAIR_COLS = PAIR_ROWS + ["inconsistent", "unscored"]


def pair_prediction(verdict: Any) -> str:
    """A pair verdict (or jury verdict) in the human vocabulary: a, b, tie, inconsistent or unscored."""
    if verdict is None or verdict.status != "scored" or verdict.winner is None:
        return "unscored"
    if verdict.winner == "inconsistent":
        return "inconsistent"
    return human_label(verdict.winner)


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def _stat(values: Callable[[np.ndarray], float], n: int, reps: int, seed: int) -> dict[str, Any]:
    """The statistic on all ``n`` units, its 95% interval and its undefined resamples."""
    ci = bootstrap_ci(values, n, reps=reps, seed=seed)
    return {"value": _num(values(np.arange(n))), "ci95": [_num(ci.low), _num(ci.high)], "undefined": ci.undefined}


def rounded(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Scores to the nearest level of the scale (halves up), clipped to ``[lo, hi]``."""
    return np.clip(np.floor(x + 0.5), lo, hi)


def _subset_keys(metas: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys: dict[str, set[Any]] = {}
    for m in metas:
        for k, v in m.items():
            if isinstance(v, (str, int, bool)) and not isinstance(v, float):
                keys.setdefault(k, set()).add(v)
            else:
                keys.setdefault(k, set()).add(None)  # non-scalar: not a subset key
    return {k: sorted(v, key=str) for k, v in keys.items() if None not in v and 1 < len(v) <= 20}


def _by_subset(metas: list[dict[str, Any]], stats: dict[str, Callable[[np.ndarray], Any]]) -> dict[str, Any]:
    """``stats`` (each a function of the rows' indices) for every value of every subset key of ``metas``."""
    subsets: dict[str, Any] = {}
    for key, values in _subset_keys(metas).items():
        subsets[key] = {}
        for v in values:
            idx = np.array([i for i, m in enumerate(metas) if m.get(key) == v])
            subsets[key][str(v)] = {"n": len(idx), **{name: _num(f(idx)) for name, f in stats.items()}}
    return subsets


def pairwise_metrics(
    labels: list[str],
    preds: list[str],
    *,
    consistent: list[bool | None] | None = None,
    len_a: list[int] | None = None,
    len_b: list[int] | None = None,
    metas: list[dict[str, Any]] | None = None,
    reps: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Agreement of pair verdicts with human labels.

    Args:
        labels: human labels, ``a`` / ``b`` / ``tie``.
        preds: judge verdicts, ``a`` / ``b`` / ``tie`` / ``inconsistent`` / ``unscored``.
        consistent: per pair, whether both orders agreed (None: fewer than two orders).
        len_a, len_b: response lengths (length bias).
        metas: per pair ``meta`` (subset breakdowns).
        reps, seed: bootstrap replicates and seed.
    """
    n = len(labels)
    lab = np.array(labels, dtype=object)
    pre = np.array(preds, dtype=object)

    def acc_all(idx: np.ndarray) -> float:
        return float(np.mean(lab[idx] == pre[idx])) if len(idx) else math.nan

    def acc_no_ties(idx: np.ndarray) -> float:
        sel = idx[lab[idx] != "tie"]
        return float(np.mean(lab[sel] == pre[sel])) if len(sel) else math.nan

    def acc_decisive(idx: np.ndarray) -> float:
        sel = idx[(lab[idx] != "tie") & np.isin(pre[idx], ["a", "b"])]
        return float(np.mean(lab[sel] == pre[sel])) if len(sel) else math.nan

    def kappa(idx: np.ndarray) -> float:
        sel = idx[pre[idx] != "unscored"]
        if len(sel) == 0:
            return math.nan
        p = ["tie" if x == "inconsistent" else x for x in pre[sel]]
        return cohen_kappa(list(lab[sel]), p, labels=PAIR_ROWS)

    out: dict[str, Any] = {
        "n": n,
        "scored": int(np.sum(pre != "unscored")),
        "coverage": _num(float(np.mean(pre != "unscored"))) if n else None,
        "accuracy": _stat(acc_all, n, reps, seed),
        "accuracy_no_ties": _stat(acc_no_ties, n, reps, seed),
        "decisive_accuracy": _stat(acc_decisive, n, reps, seed),
        "n_decisive": int(np.sum((lab != "tie") & np.isin(pre, ["a", "b"]))),
        "kappa": _stat(kappa, n, reps, seed),
        "confusion": {"rows": PAIR_ROWS, "cols": PAIR_COLS, "matrix": confusion_matrix(labels, preds, PAIR_ROWS, PAIR_COLS)},
        "predicted": dict(Counter(preds)),
    }
    if consistent is not None:
        both = [c for c in consistent if c is not None]
        out["swap_consistency"] = _num(sum(both) / len(both)) if both else None
        out["n_both_orders"] = len(both)
    if len_a is not None and len_b is not None:
        j_n = j_long = h_n = h_long = 0
        for la, lb, lbl, prd in zip(len_a, len_b, labels, preds):
            if la == lb:
                continue
            longer = "a" if la > lb else "b"
            if lbl in ("a", "b"):
                h_n += 1
                h_long += lbl == longer
            if prd in ("a", "b"):
                j_n += 1
                j_long += prd == longer
        out["length"] = {
            "judge_longer_win_rate": _num(j_long / j_n) if j_n else None,
            "human_longer_win_rate": _num(h_long / h_n) if h_n else None,
            "n_judge": j_n,
            "n_human": h_n,
        }
    if metas:
        out["subsets"] = _by_subset(metas, {"accuracy": acc_all, "accuracy_no_ties": acc_no_ties, "kappa": kappa})
    return out


def pointwise_metrics(
    human: list[float],
    pred: list[float | None],
    scale: tuple[float, float],
    *,
    lengths: list[int] | None = None,
    metas: list[dict[str, Any]] | None = None,
    reps: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Agreement of judge scores (on the human scale; None = unscored) with human scores."""
    lo, hi = scale
    n = len(human)
    h = np.array(human, dtype=float)
    p = np.array([math.nan if x is None else x for x in pred], dtype=float)
    ok = ~np.isnan(p)
    levels = list(range(int(math.ceil(lo)), int(math.floor(hi)) + 1))
    integer_scale = float(lo).is_integer() and float(hi).is_integer() and len(levels) >= 2

    def rounded_(x: np.ndarray) -> np.ndarray:
        return rounded(x, lo, hi)

    def scored(idx: np.ndarray) -> np.ndarray:
        return idx[ok[idx]]

    def exact(idx: np.ndarray) -> float:
        s = idx
        if len(s) == 0:
            return math.nan
        hit = ok[s] & (rounded_(np.nan_to_num(p[s])) == rounded_(h[s]))
        return float(np.mean(hit))  # an unscored item counts as a miss

    def within_one(idx: np.ndarray) -> float:
        if len(idx) == 0:
            return math.nan
        hit = ok[idx] & (np.abs(rounded_(np.nan_to_num(p[idx])) - rounded_(h[idx])) <= 1)
        return float(np.mean(hit))

    def kappa(idx: np.ndarray) -> float:
        s = scored(idx)
        if len(s) == 0 or not integer_scale:
            return math.nan
        return cohen_kappa(
            [int(x) for x in rounded_(h[s])], [int(x) for x in rounded_(p[s])], labels=levels, weights="quadratic"
        )

    def rho(idx: np.ndarray) -> float:
        s = scored(idx)
        return spearman(h[s], p[s]) if len(s) >= 2 else math.nan

    def tau(idx: np.ndarray) -> float:
        s = scored(idx)
        return kendall_tau(h[s], p[s]) if len(s) >= 2 else math.nan

    def r(idx: np.ndarray) -> float:
        s = scored(idx)
        return pearson(h[s], p[s]) if len(s) >= 2 else math.nan

    def mae(idx: np.ndarray) -> float:
        s = scored(idx)
        return float(np.mean(np.abs(h[s] - p[s]))) if len(s) else math.nan

    out: dict[str, Any] = {
        "n": n,
        "scored": int(ok.sum()),
        "coverage": _num(float(ok.mean())) if n else None,
        "scale": [lo, hi],
        "accuracy": _stat(exact, n, reps, seed),
        "within_one": _stat(within_one, n, reps, seed),
        "kappa_quadratic": _stat(kappa, n, reps, seed),
        "spearman": _stat(rho, n, reps, seed),
        "kendall": _stat(tau, n, reps, seed),
        "pearson": _stat(r, n, reps, seed),
        "mae": _stat(mae, n, reps, seed),
    }
    if integer_scale:
        cols = [str(x) for x in levels] + ["unscored"]
        preds = [str(int(rounded_(np.array([x]))[0])) if not math.isnan(x) else "unscored" for x in p]
        truth = [str(int(x)) for x in rounded_(h)]
        out["confusion"] = {"rows": cols[:-1], "cols": cols, "matrix": confusion_matrix(truth, preds, cols[:-1], cols)}
    if lengths is not None:
        s = np.arange(n)[ok]
        out["length"] = {
            "judge_score_length_spearman": _num(spearman(p[s], np.array(lengths)[s])) if len(s) >= 2 else None,
            "human_score_length_spearman": _num(spearman(h, lengths)) if n >= 2 else None,
        }
    if metas:
        out["subsets"] = _by_subset(metas, {"accuracy": exact, "kappa_quadratic": kappa, "spearman": rho})
    return out
