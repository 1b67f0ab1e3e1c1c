"""The oversight gate: training may use the judge's feedback only when human agreement clears a bar.

:func:`gate` passes a scope (judge fingerprint, rubric hash, prompt version) only when

- at least ``min_labels`` before-reveal labels of design samples exist in that scope;
- the **anytime-valid lower confidence bound** of the design-weighted agreement clears
  ``min_agreement``, overall and in every named critical stratum;
- when ``min_kappa`` is given, kappa's lower bound clears it;
- a canary check, when given, flagged no drop.

The agreement bound is a confidence sequence, valid however often the gate is asked as labels
arrive. Per design cell ``h`` the labelled samples, in labelling order, are draws without
replacement from the cell's ``N_h`` decisions (the cell's sample is a simple random sample and each
reviewer's queue order is a seeded shuffle), so the betting construction of Waudby-Smith & Ramdas
(2023; the without-replacement form of their 2020 paper) applies to the cell's agreement rate:
for each candidate mean ``m`` the capital ``Π (1 + λ_t (y_t − m_t))`` with ``m_t`` the mean of the
cell's not-yet-drawn values under ``m`` and a predictable plug-in bet ``λ_t ≥ 0`` is a
nonnegative martingale under ``m``; ``m`` is rejected once its running maximum capital reaches
``1/α_h`` (Ville). The cell bounds hold simultaneously with α split over the cells
(``α_h = α·(W_h + 1/H)/2``), so ``Σ_h W_h·L_h`` (``W_h = N_h / N``, a cell without labels
contributing 0) is a valid lower bound on the design-weighted agreement of the whole population
and ``Σ_{h∈X} W_h·L_h / Σ_{h∈X} W_h`` on stratum ``X``'s. Kappa's bound is the lower ``α``
quantile of the stratified bootstrap: valid at a fixed number of labels, not under repeated looks.

A pass holds only for its scope: a new judge model, a reworded rubric or a new prompt template is a
new scope with no labels. An override (reviewer and reason) is stored; a stored override for the
same gate settings and scope makes the decision pass with ``overridden=True`` and the failing
reasons kept, and the report lists every override.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from judge.audit._agreement import Unit, _metric_fns, collect_units, group_units, stratified_bootstrap, unit_weights
from judge.audit._records import Override, SamplingRun, scope_key
from judge.core._errors import ConfigError

__all__ = ["GateCheck", "GateDecision", "cs_lower_bound", "cs_lower_bounds", "gate", "override_scope"]


def cs_lower_bounds(xs: Sequence[float], alpha: float, N: int | None = None, grid: int = 1000) -> list[float]:
    """Anytime-valid lower confidence bounds for the mean of values in [0, 1], one after each observation.

    The betting confidence sequence of Waudby-Smith & Ramdas: with probability at least 1 - alpha
    every bound in the list is at most the true mean, however many of them are looked at.

    Args:
        xs: the observations in the order they arrived.
        alpha: error level.
        N: the finite population drawn from without replacement; None for i.i.d. draws.
        grid: resolution of the candidate means; bounds are rounded down to it.
    """
    ms = np.linspace(0.0, 1.0, grid + 1)
    log_cap = np.zeros_like(ms)
    max_log = np.zeros_like(ms)
    dead = np.zeros_like(ms, dtype=bool)  # candidates the data already make impossible
    threshold = math.log(1.0 / alpha)
    total, sq, mu_hat = 0.0, 0.25, 0.5
    out: list[float] = []
    for t, x in enumerate(xs, 1):
        x = min(1.0, max(0.0, float(x)))
        if N is not None and t > N:
            break
        var_hat = sq / t  # (1/4 + sum of (x_i - mu_hat_i)^2) / t: a predictable variance estimate
        lam = math.sqrt(2.0 * threshold / (var_hat * t * math.log(t + 1.0)))
        # Under mean m, the next draw's conditional mean (without replacement: of what is left).
        m_t = (N * ms - total) / (N - t + 1) if N is not None else ms
        safe = np.where(m_t > 0, m_t, 1.0)
        lam_m = np.where(m_t > 0, np.minimum(lam, 0.5 / safe), lam)  # keeps every factor >= 1/2
        dead |= (m_t <= 0) & (x > 0)
        factor = 1.0 + lam_m * (x - np.clip(m_t, 0.0, None))
        log_cap += np.log(np.maximum(factor, 1e-300))
        max_log = np.maximum(max_log, log_cap)
        total += x
        sq += (x - mu_hat) ** 2
        mu_hat = (0.5 + total) / (t + 1)
        rejected = dead | (max_log >= threshold)
        if not rejected[0]:
            out.append(out[-1] if out else 0.0)
            continue
        first_open = int(np.argmin(rejected)) if not rejected.all() else len(ms)
        out.append(max(float(ms[first_open - 1]), out[-1] if out else 0.0))  # running intersection
    return out


def cs_lower_bound(xs: Sequence[float], alpha: float, N: int | None = None, grid: int = 1000) -> float:
    """The anytime-valid lower bound after all of ``xs`` (see :func:`cs_lower_bounds`); 0 without data."""
    bounds = cs_lower_bounds(xs, alpha, N, grid)
    return bounds[-1] if bounds else 0.0


class GateCheck(BaseModel):
    """One condition of the gate."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="labels, agreement, stratum:<name>, kappa, canary or scope.")
    passed: bool = Field(description="Whether the condition holds.")
    value: float | None = Field(default=None, description="The bound or count checked.")
    bar: float | None = Field(default=None, description="What it had to reach.")
    detail: str = Field(description="Readable statement of the check; for a failure, what is missing.")


class GateDecision(BaseModel):
    """The gate's decision for one or more scopes."""

    model_config = ConfigDict(extra="forbid")

    passed: bool = Field(description="True when every check passed, or an override covers every failing scope.")
    overridden: bool = Field(default=False, description="A recorded override let a failing gate pass.")
    scopes: list[str] = Field(description="Scope keys decided (fingerprint|rubric hash|prompt version).")
    checks: dict[str, list[GateCheck]] = Field(description="Per scope, every check.")
    reasons: list[str] = Field(description="Every failing check, stated with what is missing.")
    overrides: list[Override] = Field(default_factory=list, description="Overrides that applied.")
    alpha: float = Field(description="Error level of the bounds.")


def override_scope(name: str, scope: str, min_agreement: float, min_labels: int, min_kappa: float | None,
                   critical: Sequence[str]) -> str:
    """The scope string an override is recorded under: gate name, settings and judge scope."""
    return f"gate:{name}|agreement>={min_agreement}|labels>={min_labels}|kappa>={min_kappa}|critical={','.join(sorted(critical))}|{scope}"


def _cells(units: list[Unit], run: SamplingRun | None, scope: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if run is not None:
        for c, info in run.cells.items():
            n = info.get("scopes", {}).get(scope, {}).get("N", 0)
            if n:
                out[c] = {"stratum": info["stratum"], "N": n, "ys": []}
    for u in units:
        cell = out.setdefault(u.sample.cell, {"stratum": u.sample.stratum, "N": None, "ys": []})
        cell["ys"].append(u.y)
    return out


def _bound(cells: dict[str, dict[str, Any]], names: list[str], alpha_of: dict[str, float]) -> tuple[float, float]:
    """(lower bound, point estimate) of the N-weighted agreement over ``names``."""
    known = [c for c in names if cells[c]["N"]]
    if known:
        tot = sum(cells[c]["N"] for c in known)
        lb = sum(cells[c]["N"] / tot * cs_lower_bound(cells[c]["ys"], alpha_of[c], cells[c]["N"]) for c in known)
        labelled = [c for c in known if cells[c]["ys"]]
        ltot = sum(cells[c]["N"] for c in labelled) or 1
        est = sum(cells[c]["N"] / ltot * float(np.mean(cells[c]["ys"])) for c in labelled) if labelled else math.nan
        return lb, est
    ys = [y for c in names for y in cells[c]["ys"]]  # no design sizes (imported store): i.i.d. bound
    return cs_lower_bound(ys, min(alpha_of[c] for c in names)), float(np.mean(ys)) if ys else math.nan


def _more_needed(n: int, lb: float, est: float, bar: float) -> str:
    if not math.isfinite(est) or est <= bar or n == 0:
        return "the point estimate itself is not above the bar: more labels will not make it pass unless agreement improves"
    need = n * ((est - lb) / (est - bar)) ** 2  # the bound's gap shrinks roughly as 1/sqrt(n)
    return f"about {max(1, math.ceil(need - n))} more labels if agreement stays at {est:.3f}"


def _decide_scope(units: list[Unit], run: SamplingRun | None, scope: str, *, min_agreement: float, min_labels: int,
                  min_kappa: float | None, critical: Sequence[str], alpha: float, reps: int, seed: int) -> list[GateCheck]:
    checks: list[GateCheck] = []
    n_labels = sum(len(u.labels) for u in units)
    checks.append(GateCheck(
        name="labels", passed=n_labels >= min_labels, value=n_labels, bar=min_labels,
        detail=f"{n_labels} before-reveal labels" + ("" if n_labels >= min_labels else f": {min_labels - n_labels} more needed"),
    ))
    cells = _cells(units, run, scope)
    if not cells:
        checks.append(GateCheck(name="agreement", passed=False, value=0.0, bar=min_agreement,
                                detail="no labelled design samples in this scope"))
        return checks
    H = len(cells)
    tot = sum(c["N"] or 0 for c in cells.values()) or 1
    alpha_of = {c: alpha * ((info["N"] or 0) / tot + 1.0 / H) / 2 for c, info in cells.items()}
    lb, est = _bound(cells, list(cells), alpha_of)
    ok = lb >= min_agreement
    checks.append(GateCheck(
        name="agreement", passed=ok, value=round(lb, 4), bar=min_agreement,
        detail=f"agreement lower bound {lb:.3f} (anytime-valid, alpha {alpha}; estimate {est:.3f})"
        + ("" if ok else f" < {min_agreement}: {_more_needed(len(units), lb, est, min_agreement)}"),
    ))
    for stratum in critical:
        names = [c for c, info in cells.items() if info["stratum"] == stratum]
        if not names or not any(cells[c]["ys"] for c in names):
            checks.append(GateCheck(name=f"stratum:{stratum}", passed=False, value=0.0, bar=min_agreement,
                                    detail=f"critical stratum {stratum!r} has no labelled samples in this scope"))
            continue
        s_lb, s_est = _bound(cells, names, alpha_of)
        n_s = sum(len(cells[c]["ys"]) for c in names)
        ok = s_lb >= min_agreement
        checks.append(GateCheck(
            name=f"stratum:{stratum}", passed=ok, value=round(s_lb, 4), bar=min_agreement,
            detail=f"stratum {stratum} agreement lower bound {s_lb:.3f} (estimate {s_est:.3f}, {n_s} samples)"
            + ("" if ok else f" < {min_agreement}: {_more_needed(n_s, s_lb, s_est, min_agreement)} in {stratum}"),
        ))
    if min_kappa is not None:
        kind = units[0].sample.kind if units else "pairwise"
        fn = _metric_fns(kind)["kappa"]
        # One-sided: the lower alpha quantile is the lower end of the two-sided interval at level 1 - 2 alpha.
        k_lb = stratified_bootstrap(units, lambda us: fn(us, None), reps, seed, level=1 - 2 * alpha)[0] if units else None
        k_est = round(fn(units, None), 3) if units else None
        ok = k_lb is not None and k_lb >= min_kappa
        checks.append(GateCheck(
            name="kappa", passed=ok, value=k_lb, bar=min_kappa,
            detail=f"kappa lower bound {k_lb if k_lb is None else round(k_lb, 3)} (bootstrap, fixed-n; estimate {k_est})"
            + ("" if ok else f" < {min_kappa}"),
        ))
    return checks


def gate(
    store: Any,
    *,
    min_agreement: float = 0.8,
    min_labels: int = 50,
    min_kappa: float | None = None,
    critical_strata: Sequence[str] = (),
    alpha: float = 0.05,
    scopes: Sequence[str] | None = None,
    canary: Any | None = None,
    name: str = "default",
    reps: int = 500,
    seed: int = 0,
    runs: Sequence[str] | None = None,
) -> GateDecision:
    """Decide whether the judge's feedback may be used (see the module docstring).

    Args:
        store: the :class:`~judge.audit.AuditStore`.
        min_agreement: the bar for the agreement lower bound, in [0, 1].
        min_labels: before-reveal labels needed at least.
        min_kappa: the bar for kappa's lower bound, if any.
        critical_strata: strata whose own bound must clear ``min_agreement``.
        alpha: error level of every bound.
        scopes: scope keys (``fingerprint|rubric hash|prompt version``) the feedback comes from;
            None = every scope of the most recent sampling run. The RLAIF loop passes its judge's.
        canary: a :class:`~judge.audit.CanaryCheck`; a flagged drop fails the gate.
        name: the gate's name (overrides are recorded per name).
        runs: sampling run ids whose labels count; None = every run. The RLAIF loop passes its
            round's run, so each round's judgments are cleared by labels of their own sample.
        reps: bootstrap resamples for kappa.
        seed: bootstrap seed.
    """
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 <= min_agreement <= 1:
        raise ConfigError(f"min_agreement must be in [0, 1], got {min_agreement}")
    only = set(runs) if runs is not None else None
    samples = store.samples()
    runs = {r.run_id: r for r in store.runs()}
    if scopes is None:
        design = [s for s in samples if s.inclusion_prob is not None]
        if not design:
            raise ConfigError(f"{store.path}: no audit samples; run `judgeloop audit sample` first")
        last = design[-1].run_id
        scopes = sorted({scope_key(*s.scope) for s in design if s.run_id == last})
    units = [u for u in collect_units(samples, store.labels()) if u.sample.inclusion_prob is not None]
    if only is not None:
        units = [u for u in units if u.sample.run_id in only]
    grouped: dict[str, dict[str, list[Unit]]] = defaultdict(dict)
    for (sc, run_id), us in group_units(units).items():
        grouped[sc][run_id] = us
    checks: dict[str, list[GateCheck]] = {}
    reasons: list[str] = []
    applied: list[Override] = []
    all_overridden = True
    stored = store.overrides()
    for sc in scopes:
        by_run = grouped.get(sc, {})
        run_id = max(by_run, key=lambda r: len(by_run[r])) if by_run else None  # the run most labelled
        us = by_run.get(run_id, []) if run_id else []
        run = runs.get(run_id) if run_id else None
        if us:
            unit_weights(us, run)
        cs = _decide_scope(us, run, sc, min_agreement=min_agreement, min_labels=min_labels, min_kappa=min_kappa,
                           critical=critical_strata, alpha=alpha, reps=reps, seed=seed)
        if not us:
            others = sum(len(v) for k, g in grouped.items() if k != sc for v in g.values())
            cs.insert(0, GateCheck(name="scope", passed=False, detail=(
                f"no before-reveal labels for this judge/rubric/prompt scope ({sc})"
                + (f"; {others} labelled samples of other scopes do not count (a pass is void once the judge, rubric or prompt changes)" if others else ""))))
        if canary is not None:
            cs.append(GateCheck(name="canary", passed=not canary.flagged, detail=canary.detail))
        checks[sc] = cs
        failing = [c for c in cs if not c.passed]
        reasons += [f"{sc}: {c.detail}" for c in failing]
        key = override_scope(name, sc, min_agreement, min_labels, min_kappa, critical_strata)
        hits = [o for o in stored if o.scope == key]
        if failing and hits:
            applied += hits
        elif failing:
            all_overridden = False
    passed = not reasons or all_overridden
    return GateDecision(passed=passed, overridden=bool(reasons) and passed, scopes=list(scopes), checks=checks,
                        reasons=reasons, overrides=applied, alpha=alpha)
