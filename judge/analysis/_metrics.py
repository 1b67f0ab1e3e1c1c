"""Agreement metrics, with numpy only: accuracy, Cohen's kappa, rank correlations, Krippendorff's
alpha, confusion matrices and seeded bootstrap intervals.

Every function takes plain sequences and returns plain floats (``nan`` when a statistic is
undefined, e.g. a correlation of a constant), so reports serialise to JSON without surprises.
``tests/test_metrics.py`` checks each one against its reference implementation (scikit-learn's
``cohen_kappa_score``, ``scipy.stats`` correlations and ``bootstrap``, the ``krippendorff``
package); numpy alone keeps ``import judge`` light and the core install small.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Hashable, Literal, NamedTuple, Sequence

import numpy as np

__all__ = [
    "BootstrapCI",
    "accuracy",
    "bootstrap_ci",
    "cohen_kappa",
    "confusion_matrix",
    "kendall_tau",
    "krippendorff_alpha",
    "pearson",
    "rankdata",
    "spearman",
]

Level = Literal["nominal", "ordinal", "interval", "ratio"]

#: Cells of the pairwise sign matrices :func:`kendall_tau` holds at once (~32 MB of float64 each).
KENDALL_BLOCK_CELLS = 4_000_000


def accuracy(truth: Sequence[Hashable], pred: Sequence[Hashable]) -> float:
    """Fraction of positions where ``pred`` equals ``truth`` (nan for no data)."""
    if len(truth) != len(pred):
        raise ValueError(f"truth and pred must have the same length, got {len(truth)} and {len(pred)}")
    if not truth:
        return math.nan
    return sum(1 for t, p in zip(truth, pred) if t == p) / len(truth)


def confusion_matrix(
    truth: Sequence[Hashable], pred: Sequence[Hashable], rows: Sequence[Hashable], cols: Sequence[Hashable]
) -> list[list[int]]:
    """Counts of (truth, pred) pairs: rows follow ``rows`` (truth labels), columns ``cols``.

    Raises:
        ValueError: a label is missing from ``rows`` or ``cols``.
    """
    ri = {r: i for i, r in enumerate(rows)}
    ci = {c: i for i, c in enumerate(cols)}
    m = [[0] * len(cols) for _ in rows]
    for t, p in zip(truth, pred):
        if t not in ri:
            raise ValueError(f"truth label {t!r} is not among rows {list(rows)}")
        if p not in ci:
            raise ValueError(f"predicted label {p!r} is not among cols {list(cols)}")
        m[ri[t]][ci[p]] += 1
    return m


def cohen_kappa(
    a: Sequence[Hashable],
    b: Sequence[Hashable],
    labels: Sequence[Hashable] | None = None,
    weights: Literal["linear", "quadratic"] | None = None,
) -> float:
    """Cohen's kappa between two raters; weighted for ordinal labels.

    Args:
        a, b: the two raters' labels, position by position.
        labels: the categories in order (required order for weighted kappa); default: the sorted
            union of the labels seen.
        weights: None (nominal), ``linear`` or ``quadratic`` disagreement weights by the distance
            between category positions.

    Returns:
        kappa, or nan when it is undefined (no data, or chance agreement is already perfect).
    """
    if len(a) != len(b):
        raise ValueError(f"a and b must have the same length, got {len(a)} and {len(b)}")
    if not a:
        return math.nan
    cats = list(labels) if labels is not None else sorted(set(a) | set(b), key=lambda x: (str(type(x)), x))
    k = len(cats)
    m = np.array(confusion_matrix(a, b, cats, cats), dtype=float)
    n = m.sum()
    expected = np.outer(m.sum(axis=1), m.sum(axis=0)) / n
    idx = np.arange(k)
    dist = np.abs(idx[:, None] - idx[None, :]).astype(float)
    if weights is None:
        w = (dist > 0).astype(float)
    elif weights == "linear":
        w = dist
    elif weights == "quadratic":
        w = dist**2
    else:
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    denom = (w * expected).sum()
    if denom == 0:
        return math.nan
    return float(1.0 - (w * m).sum() / denom)


def rankdata(x: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    arr = np.asarray(x, dtype=float)
    order = np.argsort(arr, kind="mergesort")
    ranks = np.empty(len(arr), dtype=float)
    sorted_vals = arr[order]
    i = 0
    while i < len(arr):
        j = i
        while j + 1 < len(arr) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation (nan if either side is constant or there are fewer than 2 points)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xa) != len(ya):
        raise ValueError(f"x and y must have the same length, got {len(xa)} and {len(ya)}")
    if len(xa) < 2:
        return math.nan
    xd, yd = xa - xa.mean(), ya - ya.mean()
    den = math.sqrt(float((xd**2).sum() * (yd**2).sum()))
    return float((xd * yd).sum() / den) if den > 0 else math.nan


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of average ranks."""
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    return pearson(rankdata(x), rankdata(y))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (tie-corrected), by counting concordant and discordant pairs."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xa) != len(ya):
        raise ValueError(f"x and y must have the same length, got {len(xa)} and {len(ya)}")
    n = len(xa)
    if n < 2:
        return math.nan
    s = 0.0
    tx = ty = 0.0  # pairs not tied in x, not tied in y
    # Rows of the n x n sign matrices are taken a block at a time so memory stays bounded.
    chunk = max(1, KENDALL_BLOCK_CELLS // n)
    for start in range(0, n, chunk):
        sx = np.sign(xa[start : start + chunk, None] - xa[None, :])
        sy = np.sign(ya[start : start + chunk, None] - ya[None, :])
        s += float((sx * sy).sum())
        tx += float((sx != 0).sum())
        ty += float((sy != 0).sum())
    # Every unordered pair was counted twice (i<j and j<i) in each sum.
    den = math.sqrt(tx * ty)
    return s / den if den > 0 else math.nan


def krippendorff_alpha(data: Any, level: Level = "nominal") -> float:
    """Krippendorff's alpha for any number of raters, with missing values.

    Args:
        data: raters x units, numeric, ``nan`` (or None) where a rater gave no value. Nominal data
            may use any numeric codes; ordinal codes are ranked by their numeric order.
        level: ``nominal``, ``ordinal``, ``interval`` or ``ratio`` metric.

    Returns:
        alpha (1 = perfect agreement, 0 = chance), or nan when fewer than two pairable values exist
        or all values are identical.
    """
    arr = np.array([[np.nan if v is None else v for v in row] for row in data], dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"data must be raters x units, got an array of shape {arr.shape}")
    values = np.unique(arr[~np.isnan(arr)])
    if len(values) < 2:
        return math.nan
    index = {v: i for i, v in enumerate(values)}
    v = len(values)
    # Coincidence matrix: each unit with m >= 2 values adds every ordered pair with weight 1/(m-1).
    o = np.zeros((v, v))
    for unit in arr.T:
        present = unit[~np.isnan(unit)]
        m = len(present)
        if m < 2:
            continue
        counts = np.zeros(v)
        for val in present:
            counts[index[val]] += 1
        o += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n < 2:
        return math.nan
    if level == "nominal":
        d2 = 1.0 - np.eye(v)
    elif level == "interval":
        d2 = (values[:, None] - values[None, :]) ** 2
    elif level == "ratio":
        s = values[:, None] + values[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            d2 = np.where(s == 0, 0.0, ((values[:, None] - values[None, :]) / np.where(s == 0, 1, s)) ** 2)
    elif level == "ordinal":
        cum = np.cumsum(n_c)
        d2 = np.zeros((v, v))
        for c in range(v):
            for k in range(v):
                lo, hi = min(c, k), max(c, k)
                between = cum[hi] - (cum[lo - 1] if lo > 0 else 0.0)
                d2[c, k] = (between - (n_c[c] + n_c[k]) / 2.0) ** 2
    else:
        raise ValueError(f"level must be nominal, ordinal, interval or ratio, got {level!r}")
    observed = (o * d2).sum()
    expected = (np.outer(n_c, n_c) * d2).sum() / (n - 1)
    if expected == 0:
        return math.nan
    return float(1.0 - observed / expected)


class BootstrapCI(NamedTuple):
    """A percentile bootstrap interval, with the resamples on which the statistic was undefined."""

    low: float
    """Lower bound (nan when no resample gave a defined value)."""
    high: float
    """Upper bound (nan when no resample gave a defined value)."""
    undefined: int
    """Resamples whose statistic was undefined (nan or None): left out of the percentiles."""
    reps: int
    """Resamples drawn."""


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    reps: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> BootstrapCI:
    """Percentile bootstrap interval of ``statistic`` over ``n`` units resampled with replacement.

    The percentile method is the one of ``scipy.stats.bootstrap(..., method="percentile")``. A
    resample on which the statistic is undefined (a kappa of one category, a correlation of a
    constant) cannot be placed among the others; it is left out *and counted*, so a report can say
    that its interval rests on ``reps - undefined`` resamples.

    Args:
        statistic: called with an index array (length ``n``, drawn with replacement); returns the
            statistic of those units, nan (or None) where it is undefined.
        n: number of units.
        reps: bootstrap replicates.
        seed: seed of the resampling (reports are reproducible).
        level: coverage of the interval, in (0, 1).

    Returns:
        The interval; ``(nan, nan)`` bounds with no data or no defined replicate.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n == 0 or reps <= 0:
        return BootstrapCI(math.nan, math.nan, 0, 0)
    rng = np.random.default_rng(seed)
    stats = []
    undefined = 0
    for _ in range(reps):
        value = statistic(rng.integers(0, n, size=n))
        if value is None or math.isnan(value):
            undefined += 1
        else:
            stats.append(value)
    if not stats:
        return BootstrapCI(math.nan, math.nan, undefined, reps)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(np.asarray(stats), [tail, 100.0 - tail])
    return BootstrapCI(float(lo), float(hi), undefined, reps)
