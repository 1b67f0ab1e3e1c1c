"""Estimates on simulated populations: design weighting removes the risk strata's bias, PPI++ covers,
and the gate's anytime-valid bound keeps its false-pass rate under repeated looks."""

from __future__ import annotations

import numpy as np
import pytest
from audit_helpers import make_judgment as mj
from audit_helpers import make_sample

from judge.audit import HumanLabel, SampleConfig, SamplingRun, cs_lower_bounds, draw_sample, ppi_estimate
from judge.audit._agreement import _metric_fns, collect_units, unit_weights


def _label(s, value) -> HumanLabel:
    return HumanLabel(sample_id=s.sample_id, reviewer="h", phase="before_reveal", value=value,
                      shown_order="AB" if isinstance(value, str) else None,
                      created_at="2026-01-01T00:00:00")


def test_weighting_removes_the_bias_of_a_skewed_risk_stratum():
    # 1800 confident decisions the judge gets right 90% of the time, 200 low-margin ones it gets right 40%.
    rng = np.random.default_rng(0)
    js = [mj(f"ok{i}", scores={"helpful": 3}, margin=0.6) for i in range(1800)]
    js += [mj(f"lm{i}", scores={"helpful": 3}, margin=0.01) for i in range(200)]
    agree = {j.item_id: rng.random() < (0.9 if j.item_id.startswith("ok") else 0.4) for j in js}
    truth = np.mean(list(agree.values()))
    accuracy = _metric_fns("pointwise")["accuracy"]
    weighted, unweighted = [], []
    for seed in range(20):
        res = draw_sample(js, SampleConfig(budget=200, seed=seed))
        assert {s.stratum for s in res.samples} == {"uniform", "low_margin"}
        units = collect_units(res.samples, [_label(s, {"helpful": 3 if agree[s.item_id] else 1}) for s in res.samples])
        unit_weights(units, res.run)
        weighted.append(accuracy(units, None))
        unweighted.append(np.mean([u.y for u in units]))
    assert abs(np.mean(unweighted) - truth) > 0.15  # half the sample is the risk stratum: badly biased
    assert abs(np.mean(weighted) - truth) < 0.02  # design-weighted: unbiased (3 standard errors of 20 runs)


def test_gate_bound_false_pass_rate_under_repeated_looks():
    # True agreement 0.78, bar 0.8; the gate is checked after every new label from the 10th on.
    rng = np.random.default_rng(1)
    N, looks, reps, alpha, bar = 4000, 200, 150, 0.05, 0.8
    population = np.array([1.0] * int(0.78 * N) + [0.0] * (N - int(0.78 * N)))
    false_cs = false_naive = 0
    for _ in range(reps):
        xs = rng.permutation(population)[:looks]
        bounds = np.array(cs_lower_bounds(xs, alpha, N))
        false_cs += bool((bounds[9:] >= bar).any())
        n = np.arange(1, looks + 1)
        p = np.cumsum(xs) / n
        naive = p - 1.645 * np.sqrt(p * (1 - p) / n)  # a fixed-n bound, wrongly re-checked every time
        false_naive += bool((naive[9:] >= bar).any())
    assert false_cs / reps <= alpha
    assert false_naive / reps > 2 * alpha  # what the anytime-valid construction protects against
    # And it is not vacuous: a judge at 0.95 clears the bar with these many labels.
    good = (rng.random(looks) < 0.95).astype(float)
    assert cs_lower_bounds(good, alpha, N)[-1] >= bar


def test_bounds_are_monotone_and_finite_population_helps():
    xs = (np.random.default_rng(2).random(150) < 0.9).astype(float)
    b = cs_lower_bounds(xs, 0.05)
    assert all(x <= y for x, y in zip(b, b[1:]))
    assert cs_lower_bounds(xs, 0.05, N=160)[-1] > b[-1]  # nearly the whole population seen
    assert cs_lower_bounds(np.ones(50), 0.05, N=50)[-1] >= 1 - 1 / 50  # all of it seen: the mean is known


def _ppi_population(rng, N):
    f = rng.random(N)  # the judge's P(A better)
    y = np.where(rng.random(N) < f, "a", "b")  # humans agree with the judge's probability
    return f, y


def test_ppi_interval_covers_and_is_narrower_than_human_only():
    rng = np.random.default_rng(3)
    N, n, reps = 3000, 80, 150
    f, y = _ppi_population(rng, N)
    truth = float(np.mean(y == "a"))
    scope = "fp-1|rh-1|pv-1"
    run = SamplingRun(run_id="run-0", seed=0, config={}, population=N, cells={"rest:rh-1": {
        "stratum": "uniform", "N": N, "n": n, "inclusion_prob": n / N,
        "scopes": {scope: {"N": N, "f_sum": float(f.sum()), "f_sumsq": float((f**2).sum())}}}})
    covered_ppi = covered_h = 0
    widths_ppi, widths_h = [], []
    for r in range(reps):
        idx = rng.choice(N, n, replace=False)
        samples = []
        for i in idx:
            s = make_sample(int(i), prob=n / N)
            s.cell = "rest:rh-1"
            s.judge_output.p_a = float(f[i])
            samples.append(s)
        units = collect_units(samples, [_label(s, y[int(s.item_id[3:])]) for s in samples])
        est = ppi_estimate(units, run)
        assert est["available"] and 0 <= est["lambda"] <= 1
        lo, hi = est["ppi"]["ci"]
        covered_ppi += lo <= truth <= hi
        widths_ppi.append(hi - lo)
        lo, hi = est["human_only"]["ci"]
        covered_h += lo <= truth <= hi
        widths_h.append(hi - lo)
    assert covered_ppi / reps >= 0.9 and covered_h / reps >= 0.9  # nominal 95%
    assert np.mean(widths_ppi) < 0.9 * np.mean(widths_h)  # an informative judge narrows the interval


def test_handpicked_and_after_reveal_labels_stay_out():
    samples = [make_sample(0), make_sample(1, stratum="handpicked")]
    labels = [_label(samples[0], "a"), _label(samples[1], "b"),
              HumanLabel(sample_id=samples[0].sample_id, reviewer="h", phase="after_reveal", value="b", shown_order="AB")]
    units = collect_units(samples, labels)
    design = [u for u in units if u.sample.inclusion_prob is not None]
    assert [u.sample.sample_id for u in design] == [samples[0].sample_id]
    assert design[0].y == pytest.approx(1.0)  # the after-reveal change does not count
