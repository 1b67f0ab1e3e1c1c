"""Calibration on a labelled set: the tie band of the average-probability policy, jury weights,
and the calibrated judge config that ``judgeloop judge`` and ``judgeloop eval`` load.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judge.core._config import JobConfig

if TYPE_CHECKING:
    from judge.eval._report import EvalReport

__all__ = ["calibrate", "fit_jury_weights", "fit_tie_threshold", "save_config"]


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def fit_tie_threshold(p_a: list[float | None], labels: list[str], grid: int = 101) -> dict[str, Any]:
    """The tie band of the average-probability policy that maximises three-way accuracy.

    Candidates are 0 and every |p - 0.5| observed (plus a regular grid up to 0.5); ties between
    candidates go to the narrowest band (fewest ties declared). Pairs without a probability count
    as wrong whatever the band.
    """
    pairs = [(p, lbl) for p, lbl in zip(p_a, labels)]
    cands = sorted({0.0} | {round(abs(p - 0.5), 6) for p, _ in pairs if p is not None} | {i * 0.5 / (grid - 1) for i in range(grid)})

    def acc(t: float) -> float:
        hit = 0
        for p, lbl in pairs:
            if p is None:
                continue
            pred = "tie" if abs(p - 0.5) <= t else ("a" if p > 0.5 else "b")
            hit += pred == lbl
        return hit / len(pairs) if pairs else math.nan

    best_t, best = 0.0, -1.0
    for t in cands:
        a = acc(t)
        if a > best + 1e-12:
            best_t, best = t, a
    return {"tie_threshold": round(best_t, 6), "accuracy": _num(best), "n": len(pairs)}


def fit_jury_weights(member_metrics: dict[str, dict[str, Any]], kind: str) -> dict[str, float]:
    """Per-member vote weights from their agreement with humans.

    Pairs: the log-odds of each member's accuracy on the pairs humans decided (the optimal weights
    for independent voters), floored at 0 so a member worse than chance does not vote. Scores: the
    member's Spearman correlation with humans, floored at 0.
    """
    weights = {}
    for name, m in member_metrics.items():
        if kind == "pairwise":
            acc = m["accuracy_no_ties"]["value"]
            if acc is None:
                weights[name] = 0.0
                continue
            acc = min(max(acc, 0.01), 0.99)
            weights[name] = round(max(0.0, math.log(acc / (1 - acc))), 4)
        else:
            rho = m["spearman"]["value"]
            weights[name] = round(max(0.0, rho or 0.0), 4)
    return weights


def calibrate(report: "EvalReport", cfg: JobConfig) -> dict[str, Any]:
    """Fitted values for ``cfg`` from an eval report (see :func:`run_eval`): the changes to apply."""
    info: dict[str, Any] = {}
    if cfg.jury is not None:
        weights = fit_jury_weights(report.members or {}, report.kind)
        info["jury_weights"] = weights
    if report.kind == "pairwise":
        fits = [j["tie_threshold_fit"] for j in report.judges.values() if j.get("tie_threshold_fit")]
        if fits:
            info["tie_threshold"] = fits[0]
    return info


def save_config(cfg: JobConfig, path: str | Path, calibration: dict[str, Any], source: dict[str, Any]) -> Path:
    """Write ``cfg`` with the calibrated values as a judge config file (YAML).

    ``data``, ``output`` and ``limit`` are left out: they belong to each run, not to the judge.
    """
    import yaml

    from judge.core._io import atomic_write

    dumped = cfg.model_dump(mode="json", exclude_defaults=True)
    for k in ("data", "output", "limit"):
        dumped.pop(k, None)
    scoring = dumped.setdefault("scoring", {})
    if "tie_threshold" in calibration:
        scoring["pairwise_policy"] = "average-probability"
        scoring["tie_threshold"] = calibration["tie_threshold"]["tie_threshold"]
    if "jury_weights" in calibration and cfg.jury is not None:
        jury = cfg.jury.model_dump(mode="json", exclude_defaults=True)
        for m in jury["members"]:
            m["weight"] = calibration["jury_weights"][m["name"]]
        jury["aggregate"] = "weighted"
        dumped["jury"] = jury
    scoring["calibration"] = {**source, "fitted": calibration}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# judge config calibrated by `judgeloop eval --calibrate` on {source.get('data')}\n"
        "# Use it with: judgeloop judge --config THIS --data ... --output ...\n"
    )
    atomic_write(p, header + yaml.safe_dump(dumped, sort_keys=False, allow_unicode=True))
    return p
