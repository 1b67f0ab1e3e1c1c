"""Judge-vs-human agreement from the audit store, estimated for the whole judged population.

Only **before-reveal** labels count (a reviewer who saw the verdict is anchored), only the current
row per (sample, reviewer) (undos honoured), skips excluded, and hand-picked samples never enter an
estimate (they are reported on their own). The unit is a design sample; its agreement ``y`` is the
mean over its reviewers of the share of verdict parts the judge got exactly right (the winner of a
pair; each criterion's score), an unscored judge output counting as wrong.

Estimates are stratified by the sampling design: the labelled samples of cell ``h`` stand for that
cell's ``N_h`` decisions (weight ``N_h / labelled_h``, which is ``1 / π`` once a cell is fully
labelled; a Hájek ratio over the cells). Intervals come from a bootstrap that resamples samples
within cells. Rows are kept apart by judge fingerprint, rubric hash, prompt version and sampling
run, so a changed judge never borrows an old judge's labels.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from judge.audit._records import AuditSample, HumanLabel, SamplingRun, scope_key
from judge.audit._stats import cohen_kappa, gwet_ac1, krippendorff_alpha, normal_quantile, weighted_accuracy

__all__ = ["Unit", "agreement_of", "collect_units", "group_units", "human_quality", "judge_labels", "unit_weights"]


@dataclass
class Unit:
    """One labelled sample: its human labels (before reveal) and where it sits in the design."""

    sample: AuditSample
    labels: list[HumanLabel]
    first_seq: int
    y: float = 0.0
    weight: float = 1.0
    N_cell: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return scope_key(*self.sample.scope)


def judge_labels(sample: AuditSample) -> dict[str, Any]:
    """The judge's label per verdict part: ``winner`` (a/b/tie/inconsistent/unscored) or each criterion's score."""
    out = sample.judge_output
    if sample.kind == "pairwise":
        return {"winner": (out.winner or "unscored").lower() if out.status == "scored" else "unscored"}
    names = [c["name"] for c in (sample.rubric_def or {}).get("criteria", [])] or sorted(out.scores or {})
    return {c: (out.scores or {}).get(c, "unscored") if out.status == "scored" else "unscored" for c in names}


def human_labels(sample: AuditSample, label: HumanLabel) -> dict[str, Any]:
    """A human label per verdict part, in the judge's terms."""
    if sample.kind == "pairwise":
        return {"winner": label.value}
    assert isinstance(label.value, dict)
    return dict(label.value)


def agreement_of(sample: AuditSample, label: HumanLabel) -> float:
    """Share of the verdict parts the judge got exactly right against one human label, in [0, 1]."""
    judge, human = judge_labels(sample), human_labels(sample, label)
    parts = [c for c in human if c in judge] or list(human)
    if not parts:
        return 0.0
    return sum(1.0 for c in parts if judge.get(c) == human[c]) / len(parts)


def judge_proxy_of_sample(sample: AuditSample) -> float:
    """The judge's value of a sampled decision, as in the run's sums (see judge.audit._sampling.judge_proxy)."""
    v = sample.judge_output.p_a if sample.kind == "pairwise" else sample.judge_output.overall
    return 0.5 if v is None else float(v)


def human_quality(sample: AuditSample, label: HumanLabel) -> float | None:
    """The human-rated quality of a decision in [0, 1]: P(A better) for a pair (tie = 0.5), the weighted normalised score otherwise."""
    if sample.kind == "pairwise":
        return {"a": 1.0, "tie": 0.5, "b": 0.0}.get(str(label.value))
    crits = (sample.rubric_def or {}).get("criteria") or []
    acc = tot = 0.0
    for c in crits:
        scale = [int(k) for k in (c.get("scale") or {})]
        if c["name"] not in (label.value or {}) or len(scale) < 2:
            continue
        lo, hi, wgt = min(scale), max(scale), float(c.get("weight", 1.0))
        acc += wgt * (label.value[c["name"]] - lo) / (hi - lo)  # type: ignore[index]
        tot += wgt
    return acc / tot if tot > 0 else None


def collect_units(samples: list[AuditSample], history: list[HumanLabel]) -> list[Unit]:
    """Labelled samples (before-reveal, current rows, skips excluded), in the order they were first labelled."""
    undone = {lab.undoes for lab in history if lab.undoes is not None}
    current: dict[tuple[str, str], HumanLabel] = {}
    first: dict[str, int] = {}
    for seq, lab in enumerate(history):
        if lab.phase != "before_reveal" or lab.undoes is not None or lab.label_id in undone:
            continue
        current[(lab.sample_id, lab.reviewer)] = lab
    by_sample: dict[str, list[HumanLabel]] = defaultdict(list)
    for (sid, _), lab in current.items():
        if not lab.skipped and lab.value is not None:
            by_sample[sid].append(lab)
    for seq, lab in enumerate(history):
        if lab.sample_id in by_sample and lab.sample_id not in first and lab in by_sample[lab.sample_id]:
            first[lab.sample_id] = seq
    units = []
    for s in samples:
        labs = by_sample.get(s.sample_id)
        if labs:
            u = Unit(sample=s, labels=labs, first_seq=first.get(s.sample_id, 0))
            u.y = float(np.mean([agreement_of(s, lab) for lab in labs]))
            units.append(u)
    units.sort(key=lambda u: u.first_seq)
    return units


def group_units(units: list[Unit]) -> dict[tuple[str, str], list[Unit]]:
    """Units by (scope key, sampling run)."""
    out: dict[tuple[str, str], list[Unit]] = defaultdict(list)
    for u in units:
        out[(u.scope, u.sample.run_id)].append(u)
    return out


def unit_weights(units: list[Unit], run: SamplingRun | None) -> dict[str, Any]:
    """Set each design unit's weight (``N_h / labelled_h`` in its cell and scope) and say which cells lack labels."""
    design = [u for u in units if u.sample.inclusion_prob is not None]
    labelled: dict[str, int] = defaultdict(int)
    for u in design:
        labelled[u.sample.cell] += 1
    missing, covered_share = [], 1.0
    if run is not None and design:
        scope = design[0].scope
        sizes = {c: info.get("scopes", {}).get(scope, {}).get("N", 0) for c, info in run.cells.items()}
        total = sum(sizes.values()) or 1
        missing = sorted(c for c, n in sizes.items() if n > 0 and labelled.get(c, 0) == 0)
        covered_share = 1.0 - sum(sizes[c] for c in missing) / total
    else:
        sizes = {}
    for u in design:
        n_cell = sizes.get(u.sample.cell)
        u.N_cell = n_cell if n_cell else None
        # Without the run's design (an imported store), 1 / π is the weight.
        u.weight = (n_cell / labelled[u.sample.cell]) if n_cell else 1.0 / float(u.sample.inclusion_prob)  # type: ignore[arg-type]
    return {"missing_cells": missing, "covered_share": covered_share}


def _pairs(units: list[Unit], part: str | None) -> tuple[list[Any], list[Any], list[float]]:
    """(judge labels, human labels, weights) over (unit, reviewer[, criterion]); weights split over a unit's reviewers."""
    ja, hb, ws = [], [], []
    for u in units:
        judge = judge_labels(u.sample)
        for lab in u.labels:
            human = human_labels(u.sample, lab)
            parts = [part] if part is not None else [c for c in human if c in judge]
            for c in parts:
                if c in human and c in judge:
                    ja.append(judge[c])
                    hb.append(human[c])
                    ws.append(u.weight / (len(u.labels) * len(parts)))
    return ja, hb, ws


def _metric_fns(kind: str) -> dict[str, Callable[[list[Unit], str | None], float]]:
    ordinal = kind != "pairwise"

    def acc(us: list[Unit], part: str | None) -> float:
        a, b, w = _pairs(us, part)
        return weighted_accuracy(a, b, w)

    def scored(us: list[Unit], part: str | None) -> tuple[list[Any], list[Any], list[float]]:
        a, b, w = _pairs(us, part)
        keep = [i for i, x in enumerate(a) if x != "unscored" and (not ordinal or isinstance(x, int))]
        return [a[i] for i in keep], [b[i] for i in keep], [w[i] for i in keep]

    def kappa(us: list[Unit], part: str | None) -> float:
        a, b, w = scored(us, part) if ordinal else _pairs(us, part)
        return cohen_kappa(a, b, w, "quadratic" if ordinal else "none")

    def alpha(us: list[Unit], part: str | None) -> float:
        a, b, w = scored(us, part) if ordinal else _pairs(us, part)
        return krippendorff_alpha([[x, y] for x, y in zip(a, b)], "interval" if ordinal else "nominal", w)

    def ac1(us: list[Unit], part: str | None) -> float:
        a, b, w = _pairs(us, part)
        return gwet_ac1(a, b, w)

    return {"accuracy": acc, "kappa": kappa, "alpha": alpha, "ac1": ac1}


def _clean(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def stratified_bootstrap(
    units: list[Unit], fn: Callable[[list[Unit]], float], reps: int, seed: int, level: float = 0.95
) -> list[float | None]:
    """Percentile interval of ``fn`` from resampling units with replacement within their design cells."""
    if not units:
        return [None, None]
    cells: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(units):
        cells[u.sample.cell].append(i)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(reps):
        idx = [i for members in cells.values() for i in rng.choice(members, size=len(members), replace=True)]
        v = fn([units[i] for i in idx])
        if math.isfinite(v):
            stats.append(v)
    if not stats:
        return [None, None]
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [_clean(lo), _clean(hi)]


def metric_table(units: list[Unit], kind: str, part: str | None, reps: int, seed: int) -> dict[str, Any]:
    """Accuracy, kappa, alpha and AC1 (design-weighted) with stratified-bootstrap 95% intervals."""
    out: dict[str, Any] = {}
    for name, fn in _metric_fns(kind).items():
        est = fn(units, part)
        out[name] = {"estimate": _clean(est), "ci": stratified_bootstrap(units, lambda us: fn(us, part), reps, seed)}
    return out


def human_ceiling(units: list[Unit]) -> dict[str, Any]:
    """Agreement between humans on samples labelled by two or more reviewers (the ceiling for any judge)."""
    agree, a, b = [], [], []
    for u in units:
        if len(u.labels) < 2:
            continue
        labs = sorted(u.labels, key=lambda lab: lab.reviewer)
        for i in range(len(labs)):
            for j in range(i + 1, len(labs)):
                hi, hj = human_labels(u.sample, labs[i]), human_labels(u.sample, labs[j])
                parts = [c for c in hi if c in hj]
                if parts:
                    agree.append(sum(hi[c] == hj[c] for c in parts) / len(parts))
                    a += [hi[c] for c in parts]
                    b += [hj[c] for c in parts]
    n = sum(1 for u in units if len(u.labels) >= 2)
    scheme = "quadratic" if a and all(isinstance(x, int) for x in a + b) else "none"
    return {
        "n_samples": n,
        "agreement": _clean(float(np.mean(agree))) if agree else None,
        "kappa": _clean(cohen_kappa(a, b, None, scheme)) if a else None,  # type: ignore[arg-type]
    }


def ppi_estimate(units: list[Unit], run: SamplingRun | None, level: float = 0.95) -> dict[str, Any]:
    """Prediction-powered (PPI++) estimate of the human-rated quality of every judged decision in the scope.

    ``θ = λ·mean(f over all N) + Σ_h W_h·mean_h(y − λ f)``, with ``f`` the judge's value of each
    decision, ``y`` the human-rated quality, ``W_h = N_h / N`` over the design cells, and ``λ`` tuned
    to minimise the variance ``λ²σ_f²/N + Σ_h W_h²(1 − n_h/N_h)·Var_h(y − λf)/n_h`` (clipped to
    [0, 1]); ``λ = 0`` is the human-only stratified estimate, reported beside it. Intervals are the
    normal (CLT) ones. Cells with fewer than two labelled samples are left out and named.
    """
    design = [u for u in units if u.sample.inclusion_prob is not None]
    if run is None or not design:
        return {"available": False, "reason": "no sampling-run design or no labelled design samples"}
    scope = design[0].scope
    cells = {c: info.get("scopes", {}).get(scope) for c, info in run.cells.items()}
    cells = {c: v for c, v in cells.items() if v and v.get("N", 0) > 0}
    N = sum(v["N"] for v in cells.values())
    f_mean = sum(v["f_sum"] for v in cells.values()) / N
    f_var = max(0.0, sum(v["f_sumsq"] for v in cells.values()) / N - f_mean**2)
    data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for c in cells:
        ys, fs = [], []
        for u in design:
            if u.sample.cell != c:
                continue
            q = [x for x in (human_quality(u.sample, lab) for lab in u.labels) if x is not None]
            if q:
                ys.append(float(np.mean(q)))
                fs.append(judge_proxy_of_sample(u.sample))
        if len(ys) >= 2:
            data[c] = (np.asarray(ys), np.asarray(fs))
    left_out = sorted(set(cells) - set(data))
    if not data:
        reason = "no design cell has two labelled samples yet"
        if design[0].sample.kind != "pairwise" and not design[0].sample.rubric_def:
            reason = "the human-rated quality needs the rubric's scales: sample with --rubric or --config"
        return {"available": False, "reason": reason, "cells_left_out": left_out}
    n_cov = sum(cells[c]["N"] for c in data)
    W = {c: cells[c]["N"] / n_cov for c in data}
    coef = {c: W[c] ** 2 * max(0.0, 1 - len(data[c][0]) / cells[c]["N"]) / len(data[c][0]) for c in data}
    cov = sum(coef[c] * float(np.cov(y, f, ddof=1)[0, 1]) for c, (y, f) in data.items())
    varf = sum(coef[c] * float(np.var(f, ddof=1)) for c, (y, f) in data.items())
    denom = f_var / N + varf
    lam = min(1.0, max(0.0, cov / denom)) if denom > 0 else 0.0
    z = normal_quantile(1 - (1 - level) / 2)

    def estimate(lmb: float) -> dict[str, Any]:
        theta = lmb * f_mean + sum(W[c] * float(np.mean(y - lmb * f)) for c, (y, f) in data.items())
        var = lmb**2 * f_var / N + sum(coef[c] * float(np.var(y - lmb * f, ddof=1)) for c, (y, f) in data.items())
        se = math.sqrt(max(var, 0.0))
        return {"estimate": _clean(theta), "ci": [_clean(theta - z * se), _clean(theta + z * se)], "se": _clean(se)}

    return {
        "available": True,
        "quantity": "human-rated quality in [0, 1] (pairs: P(response A better), ties half)",
        "n_labelled": int(sum(len(y) for y, _ in data.values())),
        "N": N,
        "judge_mean": _clean(f_mean),
        "lambda": _clean(lam),
        "ppi": estimate(lam),
        "human_only": estimate(0.0),
        "cells_left_out": left_out,
    }
