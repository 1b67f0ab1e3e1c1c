"""Agreement metrics against textbook and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from judge.analysis._metrics import (
    accuracy,
    bootstrap_ci,
    cohen_kappa,
    confusion_matrix,
    kendall_tau,
    krippendorff_alpha,
    pearson,
    rankdata,
    spearman,
)

nan = math.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 coders, 12 units,
# missing values. Published: nominal 0.743, ordinal 0.815, interval 0.849, ratio 0.797.
KRIPP_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]
# The worked example of Wikipedia's "Krippendorff's alpha" article: 3 coders, 15 units.
# Published: nominal 0.691, interval 0.811.
WIKIPEDIA = [
    [nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
    [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
    [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4],
]


@pytest.mark.parametrize(
    "level, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)]
)
def test_krippendorff_alpha_matches_the_published_example(level, published):
    assert round(krippendorff_alpha(KRIPP_2011, level), 3) == published


def test_krippendorff_alpha_matches_wikipedia():
    assert krippendorff_alpha(WIKIPEDIA, "nominal") == pytest.approx(0.691358, abs=1e-6)
    assert krippendorff_alpha(WIKIPEDIA, "interval") == pytest.approx(0.810845, abs=1e-6)


def test_krippendorff_alpha_edge_cases():
    assert krippendorff_alpha([[1, 2, 3, 4], [1, 2, 3, 4]], "nominal") == 1.0
    assert krippendorff_alpha([[1, 2, 3, 4], [1, 2, 3, 4]], "interval") == 1.0
    assert math.isnan(krippendorff_alpha([[1, 1], [1, 1]]))  # one value: no variation to agree on
    assert math.isnan(krippendorff_alpha([[1, nan], [nan, 2]]))  # no unit coded twice
    assert krippendorff_alpha([[1, 2, None], [1, 2, 2]], "nominal") == 1.0  # None is missing
    # Two coders who systematically disagree do worse than chance.
    assert krippendorff_alpha([[1, 2, 1, 2], [2, 1, 2, 1]], "nominal") < 0
    with pytest.raises(ValueError, match="level must be"):
        krippendorff_alpha([[1, 2], [1, 2]], "cardinal")  # type: ignore[arg-type]


def test_cohen_kappa_hand_computed():
    # Wikipedia's example: 50 items, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> kappa 0.4.
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == 1.0
    assert math.isnan(cohen_kappa([], []))
    assert math.isnan(cohen_kappa(["x", "x"], ["x", "x"]))  # chance agreement is already perfect


def test_weighted_kappa_hand_computed():
    # 3 levels, 4 items: (1,1) (2,3) (3,3) (1,2). Observed counts O, marginals a=(2,1,1), b=(1,1,2).
    a, b = [1, 2, 3, 1], [1, 3, 3, 2]
    # Rows (a) 2,1,1; columns (b) 1,1,2; chance E = outer/4. Linear: sum |i-j| O = 2, sum |i-j| E = 4.
    o = np.zeros((3, 3))
    for x, y in zip(a, b):
        o[x - 1, y - 1] += 1
    e = np.outer(o.sum(1), o.sum(0)) / 4
    d = np.abs(np.arange(3)[:, None] - np.arange(3)[None, :])
    lin = 1 - (d * o).sum() / (d * e).sum()
    quad = 1 - (d**2 * o).sum() / (d**2 * e).sum()
    assert (d * o).sum() == 2 and (d * e).sum() == pytest.approx(4.0)
    assert cohen_kappa(a, b, labels=[1, 2, 3], weights="linear") == pytest.approx(lin) == pytest.approx(0.5)
    assert (d**2 * e).sum() == pytest.approx(6.5)
    assert cohen_kappa(a, b, labels=[1, 2, 3], weights="quadratic") == pytest.approx(quad) == pytest.approx(1 - 2 / 6.5)
    # Unweighted on the same data: observed agreement 2/4, chance (2*1 + 1*1 + 1*2)/16 = 5/16.
    assert cohen_kappa(a, b, labels=[1, 2, 3]) == pytest.approx((0.5 - 5 / 16) / (1 - 5 / 16))
    # Labels that never occur still count for the weights' distances.
    assert cohen_kappa([1, 3], [1, 3], labels=[1, 2, 3], weights="quadratic") == 1.0


def test_rank_correlations_hand_computed():
    x, y = [1, 2, 3, 4, 5], [5, 6, 7, 8, 7]
    # y's ranks with the tie averaged: 1, 2, 3.5, 5, 3.5 -> rho = 8 / sqrt(10 * 9.5).
    assert list(rankdata(y)) == [1, 2, 3.5, 5, 3.5]
    assert spearman(x, y) == pytest.approx(8 / math.sqrt(95))
    # 10 pairs: 8 concordant, 1 discordant, 1 tied in y -> tau-b = 7 / sqrt(10 * 9).
    assert kendall_tau(x, y) == pytest.approx(7 / math.sqrt(90))
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1])
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau([1], [1]))


def test_kendall_large_input_is_chunked_and_exact():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=3000).astype(float)
    y = x + rng.normal(0, 1, size=3000)
    # A direct count on a subsample agrees with the chunked implementation.
    xs, ys = x[:300], y[:300]
    c = d = tx = ty = 0
    for i in range(300):
        for j in range(i + 1, 300):
            sx, sy = np.sign(xs[i] - xs[j]), np.sign(ys[i] - ys[j])
            c += sx * sy > 0
            d += sx * sy < 0
            tx += sx != 0
            ty += sy != 0
    assert kendall_tau(xs, ys) == pytest.approx((c - d) / math.sqrt(tx * ty))
    assert 0.5 < kendall_tau(x, y) < 1.0


def test_accuracy_and_confusion():
    assert accuracy(["a", "b", "tie"], ["a", "a", "tie"]) == pytest.approx(2 / 3)
    assert math.isnan(accuracy([], []))
    with pytest.raises(ValueError, match="same length"):
        accuracy(["a"], [])
    m = confusion_matrix(["a", "b", "b"], ["a", "a", "unscored"], ["a", "b"], ["a", "b", "unscored"])
    assert m == [[1, 0, 0], [1, 0, 1]]
    with pytest.raises(ValueError, match="not among cols"):
        confusion_matrix(["a"], ["z"], ["a"], ["a"])


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    values = np.array([1.0] * 30 + [0.0] * 10)

    def mean(idx):
        return float(values[idx].mean())

    lo, hi = bootstrap_ci(mean, len(values), reps=500, seed=7)
    assert lo < 0.75 < hi
    # Continuous data: every seed gives its own interval, the same seed the same one.
    smooth = np.linspace(0.0, 1.0, 40) ** 2

    def smooth_mean(idx):
        return float(smooth[idx].mean())

    a = bootstrap_ci(smooth_mean, 40, reps=500, seed=7)
    assert a == bootstrap_ci(smooth_mean, 40, reps=500, seed=7)
    assert a != bootstrap_ci(smooth_mean, 40, reps=500, seed=8)
    assert a[0] < smooth.mean() < a[1]
    assert all(math.isnan(v) for v in bootstrap_ci(mean, 0))
