"""The eval report as a readable table (``judgeloop eval`` without ``--json``)."""

from __future__ import annotations

from typing import Any

from judge.eval._report import EvalReport
from judge.inputs._data import DatasetReport

__all__ = ["eval_table"]


def _v(stat: dict[str, Any] | None, reps: int, pct: bool = True) -> str:
    """A statistic with its interval, and how many resamples left it undefined (when any did)."""
    if not stat or stat.get("value") is None:
        return "n/a"
    lo, hi = stat.get("ci95") or [None, None]
    fmt = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3f}")
    ci = f" [{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else ""
    undefined = stat.get("undefined") or 0
    # The interval rests on the defined resamples only: say so, so a reader can weigh it.
    note = f" (undefined in {undefined} of {reps} resamples)" if undefined else ""
    return fmt(stat["value"]) + ci + note


def _judge_lines(name: str, m: dict[str, Any], kind: str, reps: int) -> list[str]:
    lines = [f"  {name}: n {m['n']}, scored {m['scored']} (coverage {100 * (m['coverage'] or 0):.1f}%)"]
    if kind == "pairwise":
        lines += [
            f"    accuracy (3-way, ties included)  {_v(m['accuracy'], reps)}",
            f"    accuracy (human-decided pairs)   {_v(m['accuracy_no_ties'], reps)}",
            f"    {'accuracy (both decided, n=' + str(m['n_decisive']) + ')':<34}{_v(m['decisive_accuracy'], reps)}",
            f"    Cohen's kappa                     {_v(m['kappa'], reps, pct=False)}",
        ]
        if m.get("swap_consistency") is not None:
            lines.append(f"    swap consistency                  {100 * m['swap_consistency']:.1f}% of {m['n_both_orders']} pairs")
        if m.get("single_order_AB"):
            so = m["single_order_AB"]
            lines.append(
                f"    one order (AB) only               accuracy {100 * (so['accuracy'] or 0):.1f}%, "
                f"human-decided {100 * (so['accuracy_no_ties'] or 0):.1f}%"
            )
        pos = m.get("position") or {}
        if pos.get("n_verdicts"):
            rate = pos.get("first_shown_win_rate")
            lines.append(
                f"    position bias                     first shown wins {100 * rate:.1f}% of {pos['n_verdicts']} "
                f"per-order verdicts" + (f"; P(first shown) {pos['mean_p_first_shown']:.3f}" if pos.get("mean_p_first_shown") is not None else "")
            )
        ln = m.get("length") or {}
        if ln:
            j, h = ln.get("judge_longer_win_rate"), ln.get("human_longer_win_rate")
            lines.append(
                f"    length bias                       longer wins: judge {'n/a' if j is None else f'{100 * j:.1f}%'}"
                f" (n={ln['n_judge']}), humans {'n/a' if h is None else f'{100 * h:.1f}%'} (n={ln['n_human']})"
            )
        conf = m["confusion"]
        lines.append("    confusion (rows human, cols judge): " + " ".join(f"{c:>12}" for c in conf["cols"]))
        for rname, row in zip(conf["rows"], conf["matrix"]):
            lines.append(f"      {rname:<34}" + " ".join(f"{x:>12}" for x in row))
        if m.get("tie_threshold_fit"):
            f = m["tie_threshold_fit"]
            lines.append(f"    fitted tie band                   {f['tie_threshold']} (accuracy {100 * (f['accuracy'] or 0):.1f}%)")
    else:
        lines += [
            f"    exact accuracy                    {_v(m['accuracy'], reps)}",
            f"    within one level                  {_v(m['within_one'], reps)}",
            f"    kappa (quadratic)                 {_v(m['kappa_quadratic'], reps, pct=False)}",
            f"    Spearman                          {_v(m['spearman'], reps, pct=False)}",
            f"    Kendall tau-b                     {_v(m['kendall'], reps, pct=False)}",
            f"    Pearson                           {_v(m['pearson'], reps, pct=False)}",
            f"    mean absolute error               {_v(m['mae'], reps, pct=False)}",
        ]
        ln = m.get("length") or {}
        if ln:
            lines.append(
                f"    Spearman(score, length)           judge {_f(ln.get('judge_score_length_spearman'))}, "
                f"humans {_f(ln.get('human_score_length_spearman'))}"
            )
    for key, groups in (m.get("subsets") or {}).items():
        lines.append(f"    by meta.{key}:")
        for value, s in groups.items():
            extra = (
                f"accuracy {_pct(s['accuracy'])}, human-decided {_pct(s['accuracy_no_ties'])}, kappa {_f(s['kappa'])}"
                if kind == "pairwise"
                else f"accuracy {_pct(s['accuracy'])}, kappa {_f(s['kappa_quadratic'])}, Spearman {_f(s['spearman'])}"
            )
            lines.append(f"      {value:<20} n {s['n']:>4}  {extra}")
    return lines


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def eval_table(report: EvalReport) -> str:
    """The report as a readable table."""
    reps = report.bootstrap.reps
    sc = report.scoring
    lines = [
        f"eval  {report.data}  ({report.kind}, {report.rows} rows, {len(report.rejected)} rejected)",
        f"  scoring {sc['method']}, policy {sc['pairwise_policy']}"
        + (f" (tie band {sc['tie_threshold']})" if sc["pairwise_policy"] == "average-probability" else "")
        + f", orders {report.pairwise_orders}; 95% intervals from {reps} bootstrap resamples (seed {report.bootstrap.seed})",
    ]
    if report.dataset:
        lines += DatasetReport.model_validate(report.dataset).lines()
    if report.rejected:
        first = report.rejected[0]
        lines.append(f"  rejected rows: {report.output_dir}/rejects.jsonl (first: line {first.line}: {first.error})")
    if report.timing is not None:
        t = report.timing
        lines.append(f"  judge {t.judge_s:.1f}s for {t.new_judgments} new judgments ({t.judgments_per_s:.2f}/s)")
    for name, m in (report.members or {}).items():
        lines += _judge_lines(f"member {name}", m, report.kind, reps)
    for name, m in report.judges.items():
        lines += _judge_lines(name, m, report.kind, reps)
    if report.jury is not None:
        a = {k: v for k, v in report.jury.alpha.items() if k not in ("members", "items")}
        lines.append("  Krippendorff's alpha between members: " + ", ".join(f"{k} {v}" for k, v in a.items()))
    if report.calibration:
        c = report.calibration
        if "tie_threshold" in c:
            lines.append(f"  calibrated tie band: {c['tie_threshold']['tie_threshold']} (accuracy {_pct(c['tie_threshold']['accuracy'])})")
        if "jury_weights" in c:
            lines.append("  calibrated jury weights: " + ", ".join(f"{k} {v}" for k, v in c["jury_weights"].items()))
        if c.get("saved_to"):
            lines.append(f"  saved: {c['saved_to']}")
    lines.append(f"  report: {report.output_dir}/report.json")
    return "\n".join(lines)
