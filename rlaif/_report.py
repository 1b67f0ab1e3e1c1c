"""``judgeloop report RUN_DIR``: one self-contained HTML page (and JSON) about every round of a loop.

Per round: the judge's scores of the policy's candidates, judge-human agreement on the round's audit
sample (design-weighted, with its interval), the gate's decision and every override, the bias
diagnostics of the judging job, the new policy's win rate over the previous one, the training mix's
synthetic share, the monitors and alarms (when the loop measured them), per-principle scores, and
example outputs of every round's policy side by side. Plots are matplotlib PNGs inlined as data
URIs; the page loads nothing and runs no script; every text in it is escaped.
"""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path
from typing import Any

from judge.core._errors import DataError

__all__ = ["build_round_report", "render_round_report"]


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _answers(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                out[str(rec.get("prompt_id"))] = rec
    return out


def _agreement(store_path: Path) -> dict[str, dict[str, Any]]:
    """Per sampling run id, the design-weighted agreement of its labels."""
    if not store_path.is_file():
        return {}
    from judge.audit._report import build_report
    from judge.audit._store import AuditStore

    store = AuditStore(store_path)
    try:
        rep = build_report(store, reps=300)
    finally:
        store.close()
    out = {}
    for row in rep["rows"]:
        acc = (row.get("overall") or {}).get("accuracy") or {}
        out[row["run_id"]] = {"estimate": acc.get("estimate"), "ci": acc.get("ci"), "labelled": row["n_labelled"],
                              "samples": row["n_samples"]}
    return {"runs": out, "overrides": rep["overrides"]}


def build_round_report(run_dir: str | Path, examples: int = 3) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data.

    Raises:
        DataError: ``run_dir`` is not a loop's run directory.
    """
    run = Path(run_dir)
    state = _read(run / "loop.json")
    if state is None:
        raise DataError(f"{run}: no loop.json (a run directory of `judgeloop loop`)")
    cfg = _read(run / "config.json") or {}
    store = Path(((cfg.get("audit") or {}).get("store")) or run / "audit.sqlite")
    agreement = _agreement(store)
    rounds = []
    for r in sorted(int(k) for k in state["rounds"]):
        steps = state["rounds"][str(r)]
        rd = run / f"round-{r}"
        summ = _read(rd / "judgments.summary.json") or {}
        scores = {rid: {c: s["mean"] for c, s in ((rs.get("expected") or rs.get("criteria")) or {}).items()}
                  for rid, rs in (summ.get("rubrics") or {}).items()}
        audit_run = (steps.get("audit") or {}).get("run_id")
        rounds.append({
            "round": r,
            "steps": sorted(steps),
            "candidates": (steps.get("generate") or {}).get("candidates"),
            "scores": scores,
            "bias": {rid: rs.get("bias") for rid, rs in (summ.get("rubrics") or {}).items()},
            "agreement": ((agreement.get("runs") or {}).get(audit_run) or {
                "estimate": None, "ci": None, "labelled": 0, "samples": steps["audit"].get("samples")}) if audit_run else None,
            "gate": steps.get("gate") or (_read(rd / "gate.json") if (rd / "gate.json").is_file() else None),
            "pairs": (steps.get("prefs") or {}).get("pairs"),
            "synthetic_share": (steps.get("mix") or {}).get("synthetic_share"),
            "win_rate": steps.get("eval"),
            "monitors": _read(rd / "monitors.json"),
            "alarms": _read(rd / "alarms.json") or [],
            "principles": _read(rd / "principles.json"),
            "probes": _read(rd / "probes.json"),
        })
    # Example outputs side by side: the base policy, then every round's new policy, on the same prompts.
    columns = [("base", _answers(run / "round-0" / "eval_answers_base.jsonl"))]
    columns += [(f"round {r['round']}", _answers(run / f"round-{r['round']}" / "eval_answers.jsonl")) for r in rounds]
    pids = sorted(set().union(*(set(a) for _, a in columns)))[:examples]
    ex = [{"prompt_id": pid, "prompt": next((a[pid]["prompt"] for _, a in columns if pid in a), ""),
           "answers": {name: (a.get(pid) or {}).get("response") for name, a in columns}} for pid in pids]
    return {"run_dir": str(run), "created_at": state.get("created_at"), "rounds": rounds,
            "overrides": agreement.get("overrides") or [], "examples": ex, "config": cfg}


def _plots(rep: dict[str, Any]) -> list[tuple[str, str]]:
    from judge.audit._report import _png

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    rs = rep["rounds"]
    xs = [r["round"] for r in rs]
    series: dict[str, list[float | None]] = {}
    for r in rs:
        for rid, cs in r["scores"].items():
            for c, v in cs.items():
                series.setdefault(f"{rid}/{c}", []).append(v)
    if series and xs:
        fig, ax = plt.subplots(figsize=(6, 2.6))
        for name, ys in series.items():
            ax.plot(xs[: len(ys)], ys, "o-", label=name)
        ax.set_xlabel("round")
        ax.set_ylabel("judge's mean score of candidates")
        ax.legend(fontsize=7)
        out.append(("Judge scores per round", _png(fig)))

    def bars(key: str, title: str, label: str) -> None:
        pts = [(r["round"], r[key]) for r in rs if r.get(key) and r[key].get("ci") and r[key].get(
            "estimate" if key == "agreement" else "win_rate") is not None]
        if not pts:
            return
        field = "estimate" if key == "agreement" else "win_rate"
        fig, ax = plt.subplots(figsize=(6, 2.4))
        est = [p[field] for _, p in pts]
        ax.errorbar([x for x, _ in pts], est, yerr=[[e - p["ci"][0] for e, (_, p) in zip(est, pts)],
                                                     [p["ci"][1] - e for e, (_, p) in zip(est, pts)]], fmt="o")
        ax.set_ylim(0, 1)
        ax.set_xlabel("round")
        ax.set_ylabel(label)
        out.append((title, _png(fig)))

    bars("agreement", "Judge-human agreement per round (95% interval)", "agreement")
    bars("win_rate", "New policy's win rate over the previous one (95% interval)", "win rate")
    mon = [(r["round"], r["monitors"]) for r in rs if r.get("monitors")]
    keys = sorted({k for _, m in mon for k, v in m.items() if isinstance(v, (int, float)) and k != "round"})
    if keys:
        fig, ax = plt.subplots(figsize=(6, 3))
        for k in keys:
            ax.plot([x for x, _ in mon], [m.get(k) for _, m in mon], "o-", label=k)
        ax.set_xlabel("round")
        ax.legend(fontsize=6, ncol=2)
        out.append(("Monitors: diversity, tails, length", _png(fig)))
    return out


_HEX = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{20,}\b")


def _short(text: str) -> str:
    """Long hashes (fingerprints, rubric hashes) cut to 12 characters for reading."""
    return _HEX.sub(r"\1…", text)


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def render_round_report(rep: dict[str, Any]) -> str:
    """The report as one self-contained page (no script, no external request; every text escaped)."""
    e = escape
    p = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        "<title>judgeloop round report</title><style>body{font-family:sans-serif;max-width:70em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
        ".alarm{color:#a00}pre{white-space:pre-wrap;margin:0}</style></head><body>",
        f"<h1>Round report</h1><p>Loop {e(rep['run_dir'])}, started {e(str(rep.get('created_at')))}: "
        f"{len(rep['rounds'])} round(s).</p>",
        "<h2>Rounds</h2><table><tr><th>round</th><th>candidates</th><th>judge scores</th><th>agreement [95%]</th>"
        "<th>gate</th><th>pairs</th><th>synthetic share</th><th>win rate [95%]</th><th>alarms</th></tr>",
    ]
    for r in rep["rounds"]:
        scores = "; ".join(f"{rid}/{c} {v:.3f}" for rid, cs in r["scores"].items() for c, v in cs.items())
        ag = r.get("agreement") or {}
        ag_s = f"{_fmt(ag.get('estimate'))} [{_fmt((ag.get('ci') or [None, None])[0])}, {_fmt((ag.get('ci') or [None, None])[1])}] ({ag.get('labelled', 0)} labelled)" if ag else "-"
        g = r.get("gate") or {}
        gate = "OVERRIDDEN" if g.get("overridden") else ("passed" if g.get("passed") else ("FAILED" if g else "-"))
        wr = r.get("win_rate") or {}
        wr_s = f"{_fmt(wr.get('win_rate'))} [{_fmt((wr.get('ci') or [None, None])[0])}, {_fmt((wr.get('ci') or [None, None])[1])}]" if wr else "-"
        alarms = "; ".join(a.get("message", "") for a in r["alarms"]) or "-"
        p.append(f"<tr><td>{r['round']}</td><td>{_fmt(r['candidates'])}</td><td>{e(scores or '-')}</td><td>{e(ag_s)}</td>"
                 f"<td>{e(gate)}</td><td>{_fmt(r['pairs'])}</td><td>{_fmt(r['synthetic_share'])}</td><td>{e(wr_s)}</td>"
                 f"<td class='alarm'>{e(alarms)}</td></tr>")
    p.append("</table>")
    failing = [(r["round"], reason) for r in rep["rounds"] for reason in ((r.get("gate") or {}).get("reasons") or [])]
    if failing:
        p.append("<h2>Gate findings</h2><ul>" + "".join(f"<li>round {n}: {e(_short(x))}</li>" for n, x in failing) + "</ul>")
    if rep["overrides"]:
        p.append("<h2>Overrides</h2><table><tr><th>who</th><th>when</th><th>scope</th><th>reason</th></tr>")
        p += [f"<tr><td>{e(o['reviewer'])}</td><td>{e(o['created_at'])}</td><td>{e(_short(o['scope']))}</td><td>{e(o['reason'])}</td></tr>"
              for o in rep["overrides"]]
        p.append("</table>")
    for title, uri in _plots(rep):
        p.append(f"<h3>{e(title)}</h3><img alt='{e(title)}' src='{uri}'>")
    bias_rows = [(r["round"], rid, b) for r in rep["rounds"] for rid, b in (r.get("bias") or {}).items() if b]
    if bias_rows:
        p.append("<h2>Bias diagnostics</h2><table><tr><th>round</th><th>rubric</th><th>diagnostics</th></tr>")
        p += [f"<tr><td>{n}</td><td>{e(rid)}</td><td><pre>{e(json.dumps(b, indent=1, default=str)[:1500])}</pre></td></tr>"
              for n, rid, b in bias_rows]
        p.append("</table>")
    for r in rep["rounds"]:
        pr = r.get("probes")
        if not pr or not pr.get("probes"):
            continue
        by_id = {x["probe"]: x for x in pr["probes"]}
        p.append(f"<h2>Drift probes, round {r['round']}</h2><p>{len(pr['probes'])} probes, mean change "
                 f"{e(_fmt(pr.get('mean_change')))}; biggest movers first.</p><table><tr><th>probe</th><th>previous score</th>"
                 "<th>new score</th><th>change</th><th>previous answer</th><th>new answer</th></tr>")
        order = pr["biggest_movers"] + [x for x in by_id if x not in pr["biggest_movers"]]
        for pid in order:
            x = by_id[pid]
            p.append(f"<tr><td>{e(pid)}</td><td>{e(_fmt(x['old_score']))}</td><td>{e(_fmt(x['new_score']))}</td>"
                     f"<td>{e(_fmt(x['change']))}</td><td><pre>{e(x['old_answer'] or '-')}</pre></td>"
                     f"<td><pre>{e(x['new_answer'] or '-')}</pre></td></tr>")
        p.append("</table>")
    per_principle = [(r["round"], r["principles"]) for r in rep["rounds"] if r.get("principles")]
    if per_principle:
        p.append("<h2>Scores per principle</h2><table><tr><th>round</th><th>principle</th><th>mean score</th></tr>")
        p += [f"<tr><td>{n}</td><td>{e(str(k))}</td><td>{e(_fmt(v))}</td></tr>" for n, pr in per_principle for k, v in pr.items()]
        p.append("</table>")
    if rep["examples"]:
        names = list(rep["examples"][0]["answers"])
        p.append("<h2>Example outputs</h2><table><tr><th>prompt</th>" + "".join(f"<th>{e(n)}</th>" for n in names) + "</tr>")
        for x in rep["examples"]:
            p.append(f"<tr><td><pre>{e(x['prompt'])}</pre></td>" + "".join(
                f"<td><pre>{e(x['answers'].get(n) or '-')}</pre></td>" for n in names) + "</tr>")
        p.append("</table>")
    p.append("</body></html>")
    return "\n".join(p)
