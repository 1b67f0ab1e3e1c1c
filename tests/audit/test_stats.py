"""Agreement statistics against hand-computed values and the reference libraries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from judge.audit import cohen_kappa, gwet_ac1, krippendorff_alpha, weighted_accuracy


def test_kappa_by_hand():
    # 2x2 table [[20, 5], [10, 15]]: po = 0.7, pe = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert weighted_accuracy(a, b) == pytest.approx(0.7)


def test_ac1_by_hand():
    # Same table: pi_y = (25 + 30) / 100 = 0.55; pe = 2 * 0.55 * 0.45 / 1 = 0.495; AC1 = (0.7 - 0.495) / 0.505
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert gwet_ac1(a, b) == pytest.approx((0.7 - 0.495) / 0.505)


def test_ac1_resists_the_prevalence_paradox():
    # 95 agreements on "y", 5 disagreements: kappa is near zero, AC1 stays high.
    a = ["y"] * 100
    b = ["y"] * 95 + ["n"] * 5
    assert cohen_kappa(a, b) == pytest.approx(0.0)
    assert gwet_ac1(a, b) > 0.9


def test_weights_count_as_repeats():
    a, b = ["y", "n", "y"], ["y", "y", "y"]
    assert weighted_accuracy(a, b, [1, 3, 1]) == pytest.approx(weighted_accuracy(["y", "n", "n", "n", "y"], ["y"] * 5))
    assert cohen_kappa(["y", "n", "n"], ["y", "n", "y"], [2, 1, 1]) == pytest.approx(
        cohen_kappa(["y", "y", "n", "n"], ["y", "y", "n", "y"])
    )


def test_kappa_matches_sklearn():
    import sklearn.metrics as sk  # the reference implementation (dev dependency)
    rng = np.random.default_rng(0)
    a = rng.integers(1, 6, 300).tolist()
    b = [min(5, max(1, x + int(rng.integers(-1, 2)))) for x in a]
    for scheme, sk_w in [("none", None), ("linear", "linear"), ("quadratic", "quadratic")]:
        assert cohen_kappa(a, b, scheme=scheme) == pytest.approx(sk.cohen_kappa_score(a, b, weights=sk_w))
    w = rng.random(300) + 0.1
    assert cohen_kappa(a, b, w, "quadratic") == pytest.approx(sk.cohen_kappa_score(a, b, weights="quadratic", sample_weight=w))


def test_alpha_matches_krippendorff():
    import krippendorff as kd  # the reference implementation (dev dependency)
    rng = np.random.default_rng(1)
    a = rng.integers(1, 6, 200)
    b = np.clip(a + rng.integers(-1, 2, 200), 1, 5)
    b[::17] = rng.integers(1, 6, len(b[::17]))
    units = [[int(x), int(y)] for x, y in zip(a, b)]
    data = np.array([a, b], dtype=float)
    for level in ("nominal", "interval", "ordinal"):
        assert krippendorff_alpha(units, level) == pytest.approx(kd.alpha(reliability_data=data, level_of_measurement=level))
    # Missing values: units with one value are not pairable.
    units[0][1] = None
    data[1, 0] = np.nan
    assert krippendorff_alpha(units, "nominal") == pytest.approx(kd.alpha(reliability_data=data, level_of_measurement="nominal"))


def test_undefined_is_nan():
    assert math.isnan(cohen_kappa([], []))
    assert math.isnan(krippendorff_alpha([["a", "a"], ["a", "a"]]))
