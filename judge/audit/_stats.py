"""Agreement statistics with observation weights: Cohen's kappa, Krippendorff's alpha, Gwet's AC1.

Every function takes two label sequences (rater 1 = the judge, rater 2 = a human, or two humans) and
optional weights (design weights ``1 / π``); with unit weights they are the textbook statistics
(checked against scikit-learn and the ``krippendorff`` package in the tests). NaN means undefined
(no observations, or no variation to agree on).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Literal, Sequence

import numpy as np

__all__ = ["cohen_kappa", "gwet_ac1", "krippendorff_alpha", "normal_quantile", "weighted_accuracy"]


def normal_quantile(p: float) -> float:
    """The standard normal quantile (no scipy needed)."""
    return NormalDist().inv_cdf(p)


def _w(n: int, weights: Sequence[float] | None) -> np.ndarray:
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if len(w) != n:
        raise ValueError(f"weights must have one entry per observation ({n}), got {len(w)}")
    return w


def weighted_accuracy(a: Sequence[Any], b: Sequence[Any], weights: Sequence[float] | None = None) -> float:
    """The weighted share of observations on which the raters agree (Hájek ratio with design weights)."""
    w = _w(len(a), weights)
    if w.sum() <= 0:
        return math.nan
    return float(sum(wi for x, y, wi in zip(a, b, w) if x == y) / w.sum())


def _categories(a: Sequence[Any], b: Sequence[Any], labels: Sequence[Any] | None) -> list[Any]:
    if labels is not None:
        return list(labels)
    return sorted(set(a) | set(b), key=lambda v: (isinstance(v, str), v))


def cohen_kappa(
    a: Sequence[Any],
    b: Sequence[Any],
    weights: Sequence[float] | None = None,
    scheme: Literal["none", "linear", "quadratic"] = "none",
    labels: Sequence[Any] | None = None,
) -> float:
    """Cohen's kappa of two raters; ``linear``/``quadratic`` weight disagreements by distance (ordinal scales).

    For weighted schemes the categories must be numbers (their order and distance are the scale's).
    """
    cats = _categories(a, b, labels)
    index = {c: i for i, c in enumerate(cats)}
    k = len(cats)
    w = _w(len(a), weights)
    if k == 0 or w.sum() <= 0:
        return math.nan
    conf = np.zeros((k, k))
    for x, y, wi in zip(a, b, w):
        conf[index[x], index[y]] += wi
    conf /= conf.sum()
    if scheme == "none":
        dis = 1.0 - np.eye(k)
    else:
        pos = np.asarray(cats, dtype=float)
        d = np.abs(pos[:, None] - pos[None, :])
        dis = d if scheme == "linear" else d**2
    expected = np.outer(conf.sum(axis=1), conf.sum(axis=0))
    de = float((dis * expected).sum())
    if de == 0:
        return math.nan
    return float(1.0 - (dis * conf).sum() / de)


def gwet_ac1(
    a: Sequence[Any], b: Sequence[Any], weights: Sequence[float] | None = None, labels: Sequence[Any] | None = None
) -> float:
    """Gwet's AC1 for two raters (nominal): robust to the prevalence paradox that deflates kappa."""
    cats = _categories(a, b, labels)
    q = len(cats)
    w = _w(len(a), weights)
    if q < 2 or w.sum() <= 0:
        return math.nan
    total = w.sum()
    pa = sum(wi for x, y, wi in zip(a, b, w) if x == y) / total
    pi = [(sum(wi for x, wi in zip(a, w) if x == c) + sum(wi for y, wi in zip(b, w) if y == c)) / (2 * total) for c in cats]
    pe = sum(p * (1 - p) for p in pi) / (q - 1)
    if pe >= 1:
        return math.nan
    return float((pa - pe) / (1 - pe))


def krippendorff_alpha(
    units: Sequence[Sequence[Any]],
    level: Literal["nominal", "ordinal", "interval"] = "nominal",
    weights: Sequence[float] | None = None,
) -> float:
    """Krippendorff's alpha over units, each a list of the values its raters gave (None = missing).

    Units with fewer than two values are not pairable and are left out, as in the definition.
    ``weights`` weight each unit's contribution to the coincidence matrix.
    """
    w = _w(len(units), weights)
    vals = [[v for v in u if v is not None] for u in units]
    cats = sorted({v for u in vals for v in u}, key=lambda v: (isinstance(v, str), v))
    if len(cats) < 2:
        return math.nan
    index = {c: i for i, c in enumerate(cats)}
    k = len(cats)
    o = np.zeros((k, k))
    for u, wi in zip(vals, w):
        m = len(u)
        if m < 2:
            continue
        counts = np.zeros(k)
        for v in u:
            counts[index[v]] += 1
        o += wi * (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n <= 1:
        return math.nan
    if level == "nominal":
        delta = 1.0 - np.eye(k)
    elif level == "interval":
        pos = np.asarray(cats, dtype=float)
        delta = (pos[:, None] - pos[None, :]) ** 2
    else:  # ordinal: squared sum of the frequencies between the two values (Krippendorff 2011)
        delta = np.zeros((k, k))
        for i in range(k):
            for j in range(k):
                lo, hi = min(i, j), max(i, j)
                delta[i, j] = (n_c[lo : hi + 1].sum() - (n_c[lo] + n_c[hi]) / 2) ** 2
    d_o = (o * delta).sum() / n
    d_e = (np.outer(n_c, n_c) * delta).sum() / (n * (n - 1))
    if d_e == 0:
        return math.nan
    return float(1.0 - d_o / d_e)
