"""Agreement metrics against textbook and hand-computed values, and against the reference
implementations: scikit-learn's ``cohen_kappa_score``, ``scipy.stats`` (correlations with ties,
``bootstrap``) and the ``krippendorff`` package (dev dependencies)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import judge.analysis._metrics as metrics_module
from judge.analysis._metrics import (
    BootstrapCI,
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


def test_kendall_large_input_is_chunked_and_exact(monkeypatch):
    from scipy import stats

    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=3000).astype(float)  # heavy ties in x
    y = np.round(x + rng.normal(0, 1, size=3000), 1)  # and some in y
    # 3000 rows in blocks of 4e6 // 3000 = 1333: three blocks, the last one partial.
    assert metrics_module.KENDALL_BLOCK_CELLS // len(x) < len(x)
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    # Blocks of 7 rows (1000 // 137) on 137 points: 20 blocks, the last with 4 rows.
    monkeypatch.setattr(metrics_module, "KENDALL_BLOCK_CELLS", 1000)
    xs, ys = x[:137], y[:137]
    assert kendall_tau(xs, ys) == pytest.approx(stats.kendalltau(xs, ys).statistic, abs=1e-12)


def test_accuracy_and_confusion():
    assert accuracy(["a", "b", "tie"], ["a", "a", "tie"]) == pytest.approx(2 / 3)
    assert math.isnan(accuracy([], []))
    with pytest.raises(ValueError, match="same length"):
        accuracy(["a"], [])
    m = confusion_matrix(["a", "b", "b"], ["a", "a", "unscored"], ["a", "b"], ["a", "b", "unscored"])
    assert m == [[1, 0, 0], [1, 0, 1]]
    with pytest.raises(ValueError, match="not among cols"):
        confusion_matrix(["a"], ["z"], ["a"], ["a"])


def test_bootstrap_is_seeded():
    # Continuous data: every seed gives its own interval, the same seed the same one.
    smooth = np.linspace(0.0, 1.0, 40) ** 2

    def smooth_mean(idx):
        return float(smooth[idx].mean())

    a = bootstrap_ci(smooth_mean, 40, reps=500, seed=7)
    assert isinstance(a, BootstrapCI) and a.reps == 500 and a.undefined == 0
    assert a == bootstrap_ci(smooth_mean, 40, reps=500, seed=7)
    assert a != bootstrap_ci(smooth_mean, 40, reps=500, seed=8)
    assert a.low < a.high
    empty = bootstrap_ci(smooth_mean, 0)
    assert math.isnan(empty.low) and math.isnan(empty.high) and empty.reps == 0
    with pytest.raises(ValueError, match="level must be in"):
        bootstrap_ci(smooth_mean, 40, level=95)


# ----------------------------------------------------------------------------------------------
# Against the reference implementations


def _ordinal_pairs(seed: int, n: int, levels: int) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, levels + 1, size=n)
    noise = rng.integers(-1, 2, size=n) * (rng.random(n) < 0.6)
    b = np.clip(a + noise, 1, levels)
    return [int(v) for v in a], [int(v) for v in b]


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed, n, levels", [(0, 50, 3), (1, 200, 5), (2, 17, 4)])
def test_cohen_kappa_matches_scikit_learn(weights, seed, n, levels):
    from sklearn.metrics import cohen_kappa_score

    a, b = _ordinal_pairs(seed, n, levels)
    ours = cohen_kappa(a, b, labels=list(range(1, levels + 1)), weights=weights)
    assert ours == pytest.approx(cohen_kappa_score(a, b, labels=list(range(1, levels + 1)), weights=weights), abs=1e-12)


def test_cohen_kappa_matches_scikit_learn_on_string_labels():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(3)
    humans = list(rng.choice(["a", "b", "tie"], size=80, p=[0.45, 0.45, 0.1]))
    judge = [h if rng.random() < 0.7 else str(rng.choice(["a", "b", "tie"])) for h in humans]
    assert cohen_kappa(humans, judge, labels=["a", "b", "tie"]) == pytest.approx(
        cohen_kappa_score(humans, judge, labels=["a", "b", "tie"]), abs=1e-12
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correlations_match_scipy_with_ties(seed):
    from scipy import stats

    rng = np.random.default_rng(seed)
    x = rng.integers(1, 6, size=60).astype(float)  # a 1-5 scale: many ties
    y = np.round(0.5 * x + rng.normal(0, 1, size=60))  # ties too
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y, variant="b").statistic, abs=1e-12)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert list(rankdata(y)) == list(stats.rankdata(y, method="average"))


def _with_missing(seed: int, raters: int, units: int, levels: int, missing: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, levels + 1, size=units)
    data = np.array([np.clip(truth + rng.integers(-1, 2, size=units), 1, levels) for _ in range(raters)], dtype=float)
    data[rng.random(data.shape) < missing] = np.nan
    return data


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@pytest.mark.parametrize("seed, raters, units, levels, missing", [(0, 3, 40, 5, 0.2), (1, 2, 25, 3, 0.0), (2, 5, 60, 7, 0.35)])
def test_krippendorff_alpha_matches_the_krippendorff_package(level, seed, raters, units, levels, missing):
    import krippendorff

    data = _with_missing(seed, raters, units, levels, missing)
    assert np.isnan(data).any() == (missing > 0)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(data, level) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_krippendorff_alpha_matches_the_package_on_the_published_example(level):
    import krippendorff

    expected = krippendorff.alpha(reliability_data=np.array(KRIPP_2011, dtype=float), level_of_measurement=level)
    assert krippendorff_alpha(KRIPP_2011, level) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_bootstrap_interval_is_close_to_scipy_percentile(seed):
    from scipy import stats

    rng = np.random.default_rng(100 + seed)
    values = rng.gamma(2.0, 1.0, size=60)  # skewed: the percentile interval is not symmetric

    def mean(idx):
        return float(values[idx].mean())

    ours = bootstrap_ci(mean, len(values), reps=4000, seed=seed)
    ref = stats.bootstrap(
        (values,), np.mean, n_resamples=4000, method="percentile", confidence_level=0.95, rng=np.random.default_rng(seed)
    ).confidence_interval
    # Same method; scipy draws its resamples from its generator its own way (today that happens to
    # be our order too, so the bounds agree to rounding). The tolerance is for Monte Carlo noise of
    # two independent draws, ~SE * 0.05 per bound here (SE of the mean ~0.18); a wrong tail moves a
    # bound by 0.05-0.12 (measured: 90% bounds 0.05-0.07 inside, 99% bounds 0.10-0.12 outside).
    assert ours.low == pytest.approx(ref.low, abs=0.03)
    assert ours.high == pytest.approx(ref.high, abs=0.03)
    assert ours.high - ours.low == pytest.approx(ref.high - ref.low, rel=0.1)


def test_bootstrap_covers_the_true_mean_about_95_percent_of_the_time():
    # 400 samples of 40 from a normal with mean 0: the 95% percentile interval of the mean should
    # contain 0 in about 95% of them. The seeds are fixed, so the count is deterministic (measured:
    # 0.950; the same loop at level 0.90 gives 0.9125 and at 0.99 gives 0.9775). With 400 trials the
    # binomial standard error is ~1.1%: [0.92, 0.975] is honest about that noise and still rejects
    # those two levels and any grosser error; the scipy comparison above pins the level exactly.
    rng = np.random.default_rng(2026)
    hits = 0
    trials = 400
    for t in range(trials):
        sample = rng.normal(0.0, 1.0, size=40)
        ci = bootstrap_ci(lambda idx: float(sample[idx].mean()), 40, reps=400, seed=t)
        hits += ci.low <= 0.0 <= ci.high
    assert 0.92 <= hits / trials <= 0.975, hits / trials


def test_bootstrap_counts_the_resamples_where_the_statistic_is_undefined():
    values = np.arange(10, dtype=float)

    def mean_unless_first(idx):
        # Undefined whenever unit 0 is drawn, as a kappa is on a resample of one category.
        return math.nan if 0 in idx else float(values[idx].mean())

    ci = bootstrap_ci(mean_unless_first, 10, reps=300, seed=5)
    # The same draws, counted independently: each resample is one rng.integers(0, n, n) call.
    rng = np.random.default_rng(5)
    draws = [rng.integers(0, 10, size=10) for _ in range(300)]
    expected_undefined = sum(1 for d in draws if 0 in d)
    assert 0 < expected_undefined < 300
    assert ci.undefined == expected_undefined and ci.reps == 300
    defined = [float(values[d].mean()) for d in draws if 0 not in d]
    assert [ci.low, ci.high] == pytest.approx(list(np.percentile(defined, [2.5, 97.5])), abs=1e-12)
    # None counts as undefined too, and a statistic undefined everywhere gives no interval.
    none = bootstrap_ci(lambda idx: None, 10, reps=20, seed=0)
    assert none.undefined == 20 and math.isnan(none.low) and math.isnan(none.high)
