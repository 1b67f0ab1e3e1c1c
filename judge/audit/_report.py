"""``judgeloop audit report``: agreement per scope, rubric and criterion, as JSON and one HTML page.

Each row is one (judge fingerprint, rubric hash, prompt version, sampling run). It holds the
design-weighted accuracy, kappa (quadratic-weighted on ordinal scores), Krippendorff's alpha
(nominal for pairs, interval for scores) and Gwet's AC1 with stratified-bootstrap intervals, per
criterion too; the unweighted accuracy beside it; every stratum on its own; the human-human ceiling;
the prediction-powered estimate of the human-rated quality of the whole population next to the
human-only one; hand-picked samples apart; and every override ever recorded.

The HTML page is self-contained: its plots are matplotlib PNGs inlined as ``data:`` URIs, it loads
nothing, runs no script, and every text in it is escaped.
"""

from __future__ import annotations

import base64
import io
import math
from html import escape
from typing import Any

import numpy as np

from judge.audit._agreement import (
    collect_units,
    group_units,
    human_ceiling,
    metric_table,
    ppi_estimate,
    stratified_bootstrap,
    unit_weights,
)
from judge.audit._records import STRATA
from judge.core._errors import MissingDependencyError

__all__ = ["build_report", "render_html"]


def _plain_accuracy(us: list[Any]) -> float:
    ys = [u.y for u in us]
    return float(np.mean(ys)) if ys else math.nan


def build_report(store: Any, reps: int = 500, seed: int = 0, canary: Any | None = None) -> dict[str, Any]:
    """The agreement report of an audit store (see the module docstring)."""
    samples = store.samples()
    runs = {r.run_id: r for r in store.runs()}
    units = collect_units(samples, store.labels())
    rows = []
    for (scope, run_id), us in group_units(units).items():
        design = [u for u in us if u.sample.inclusion_prob is not None]
        picked = [u for u in us if u.sample.inclusion_prob is None]
        first = us[0].sample
        run = runs.get(run_id)
        coverage = unit_weights(design, run) if design else {"missing_cells": [], "covered_share": 0.0}
        row: dict[str, Any] = {
            "scope": scope,
            "judge_fingerprint": first.judge_fingerprint,
            "rubric": first.rubric.id,
            "rubric_version": first.rubric.version,
            "rubric_hash": first.rubric_hash,
            "prompt_version": first.prompt_version,
            "run_id": run_id,
            "kind": first.kind,
            "n_samples": sum(1 for s in samples if s.run_id == run_id and s.inclusion_prob is not None
                             and (s.judge_fingerprint, s.rubric_hash, s.prompt_version) == first.scope),
            "n_labelled": len(design),
            "n_labels": sum(len(u.labels) for u in design),
            "reviewers": sorted({lab.reviewer for u in design for lab in u.labels}),
            "coverage": coverage,
        }
        if design:
            row["overall"] = metric_table(design, first.kind, None, reps, seed)
            row["unweighted_accuracy"] = {
                "estimate": round(_plain_accuracy(design), 6),
                "ci": stratified_bootstrap(design, _plain_accuracy, reps, seed),
            }
            if first.kind != "pairwise":
                names = [c["name"] for c in (first.rubric_def or {}).get("criteria", [])] or sorted(
                    {c for u in design for lab in u.labels if isinstance(lab.value, dict) for c in lab.value}
                )
                row["criteria"] = {c: metric_table(design, first.kind, c, reps, seed) for c in names}
            strata: dict[str, Any] = {}
            for name in STRATA:
                members = [u for u in design if u.sample.stratum == name]
                if members:
                    strata[name] = {
                        "n": len(members),
                        "accuracy": round(_plain_accuracy(members), 6),
                        "ci": stratified_bootstrap(members, _plain_accuracy, reps, seed),
                    }
            row["strata"] = strata
            row["human_ceiling"] = human_ceiling(design)
            row["prediction_powered"] = ppi_estimate(design, run)
        if picked:
            row["handpicked"] = {"n": len(picked), "accuracy": round(_plain_accuracy(picked), 6),
                                 "note": "hand-picked samples are outside the design and in no estimate"}
        rows.append(row)
    out: dict[str, Any] = {
        "store": str(store.path),
        "samples": len(samples),
        "labels": len(store.labels()),
        "phase": "before_reveal",
        "bootstrap": {"reps": reps, "seed": seed, "level": 0.95, "within": "design cells"},
        "rows": rows,
        "overrides": [o.model_dump(mode="json") for o in store.overrides()],
    }
    if canary is not None:
        out["canary"] = canary.model_dump(mode="json")
    return out


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _stat(s: dict[str, Any] | None) -> str:
    if not s:
        return "n/a"
    ci = s.get("ci") or [None, None]
    return f"{_fmt(s.get('estimate'))} [{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(row: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("the HTML audit report draws its plots with matplotlib: pip install matplotlib") from None
    out = []
    names, est, lo, hi = [], [], [], []
    for label, s in [("weighted", (row.get("overall") or {}).get("accuracy")), ("unweighted", row.get("unweighted_accuracy"))] + [
        (k, {"estimate": v["accuracy"], "ci": v["ci"]}) for k, v in (row.get("strata") or {}).items()
    ]:
        if s and s.get("estimate") is not None:
            names.append(label)
            est.append(s["estimate"])
            lo.append(s["estimate"] - (s["ci"][0] if s["ci"][0] is not None else s["estimate"]))
            hi.append((s["ci"][1] if s["ci"][1] is not None else s["estimate"]) - s["estimate"])
    if names:
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1))
        ax.errorbar(est, range(len(names)), xerr=[lo, hi], fmt="o")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlim(0, 1)
        ax.set_xlabel("judge-human agreement (95% interval)")
        out.append(("Agreement overall and by stratum", _png(fig)))
    ppi = row.get("prediction_powered") or {}
    if ppi.get("available"):
        fig, ax = plt.subplots(figsize=(6, 1.6))
        for i, key in enumerate(["human_only", "ppi"]):
            e = ppi[key]
            ax.errorbar([e["estimate"]], [i], xerr=[[e["estimate"] - e["ci"][0]], [e["ci"][1] - e["estimate"]]], fmt="o")
        ax.set_yticks([0, 1], ["human only", "prediction-powered"])
        ax.set_xlabel("human-rated quality of all judged decisions (95% interval)")
        out.append(("Prediction-powered estimate", _png(fig)))
    return out


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (no script, no external request; every text escaped)."""
    e = escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        "<title>judgeloop audit report</title><style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}</style></head><body>",
        f"<h1>Audit report</h1><p>Store {e(report['store'])}: {report['samples']} samples, {report['labels']} label rows. "
        "Only before-reveal labels count; estimates are design-weighted; intervals: stratified bootstrap "
        f"({report['bootstrap']['reps']} resamples, seed {report['bootstrap']['seed']}).</p>",
    ]
    if report.get("overrides"):
        parts.append("<h2>Overrides</h2><table><tr><th>who</th><th>when</th><th>scope</th><th>reason</th></tr>")
        parts += [f"<tr><td>{e(o['reviewer'])}</td><td>{e(o['created_at'])}</td><td>{e(o['scope'])}</td><td>{e(o['reason'])}</td></tr>"
                  for o in report["overrides"]]
        parts.append("</table>")
    if report.get("canary"):
        parts.append(f"<h2>Canary</h2><p>{e(report['canary']['detail'])}</p>")
    for row in report["rows"]:
        parts.append(f"<h2>Rubric {e(row['rubric'])} v{row['rubric_version']} ({e(row['kind'])})</h2>")
        parts.append(f"<p>judge {e(row['judge_fingerprint'][:16])}, rubric hash {e(row['rubric_hash'][:16])}, "
                     f"prompt {e(row['prompt_version'])}, run {e(row['run_id'])}: {row['n_labelled']} of {row['n_samples']} "
                     f"samples labelled ({row['n_labels']} labels by {e(', '.join(row['reviewers']))}).</p>")
        if row["coverage"].get("missing_cells"):
            parts.append(f"<p><b>Incomplete:</b> cells without labels: {e(', '.join(row['coverage']['missing_cells']))} "
                         f"(the estimates cover {100 * row['coverage']['covered_share']:.0f}% of the population).</p>")
        if "overall" in row:
            parts.append("<table><tr><th></th><th>accuracy</th><th>kappa</th><th>alpha</th><th>AC1</th></tr>")
            tables = [("all (design-weighted)", row["overall"])] + list((row.get("criteria") or {}).items())
            for name, t in tables:
                parts.append(f"<tr><td>{e(name)}</td>" + "".join(f"<td>{e(_stat(t.get(k)))}</td>" for k in ("accuracy", "kappa", "alpha", "ac1")) + "</tr>")
            parts.append(f"</table><p>Unweighted accuracy {e(_stat(row['unweighted_accuracy']))}.</p>")
            parts.append("<table><tr><th>stratum</th><th>n</th><th>accuracy [95%]</th></tr>")
            parts += [f"<tr><td>{e(k)}</td><td>{v['n']}</td><td>{e(_fmt(v['accuracy']))} [{e(_fmt(v['ci'][0]))}, {e(_fmt(v['ci'][1]))}]</td></tr>"
                      for k, v in row["strata"].items()]
            parts.append("</table>")
            hc = row["human_ceiling"]
            parts.append(f"<p>Human-human ceiling: {hc['n_samples']} samples with two or more reviewers, "
                         f"agreement {e(_fmt(hc['agreement']))}, kappa {e(_fmt(hc['kappa']))}.</p>")
            ppi = row["prediction_powered"]
            if ppi.get("available"):
                parts.append(f"<p>Human-rated quality of all {ppi['N']} decisions: prediction-powered {e(_stat(ppi['ppi']))} "
                             f"(lambda {e(_fmt(ppi['lambda']))}) vs human-only {e(_stat(ppi['human_only']))}; judge mean {e(_fmt(ppi['judge_mean']))}.</p>")
            for title, uri in _plots(row):
                parts.append(f"<h3>{e(title)}</h3><img alt='{e(title)}' src='{uri}'>")
        if row.get("handpicked"):
            parts.append(f"<p>Hand-picked (not in estimates): {row['handpicked']['n']} samples, agreement {e(_fmt(row['handpicked']['accuracy']))}.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
