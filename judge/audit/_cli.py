"""The ``judgeloop audit`` command group: human oversight of the judge."""

from __future__ import annotations

import click

__all__ = ["audit"]

_STORE_HELP = "The project's audit store (SQLite)."


@click.group()
def audit() -> None:
    """Human oversight: sample judgments, review them blind in the browser, measure agreement, gate training.

    \b
    judgeloop audit sample runs/x/judgments.jsonl --budget 50 --config job.yaml   draw a sample
    judgeloop audit add-reviewer alice --store audit.sqlite   prints a one-time login URL
    judgeloop audit serve --store audit.sqlite                the review UI on http://127.0.0.1:8765
    judgeloop audit report --store audit.sqlite --html audit.html   agreement with intervals
    judgeloop audit gate --min-agreement 0.8 --min-labels 50  exit 0 only if oversight clears the judge
    """


@audit.command("add-reviewer")
@click.argument("name")
@click.option("--store", "store_path", default="audit.sqlite", show_default=True, type=click.Path(dir_okay=False), help=_STORE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Host the review server is reached at (for the URL).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="Port of the review server (for the URL).")
def add_reviewer(name: str, store_path: str, host: str, port: int) -> None:
    """Register reviewer NAME and print their one-time login URL.

    The URL works once: opening it signs the browser in (a session cookie) and the token is spent.
    Only a hash of the token is stored, so a lost URL cannot be shown again: run this again for a
    new one. Send the URL privately; whoever opens it first labels as NAME.
    """
    from judge.audit._store import AuditStore
    from judge.audit._web import login_url

    token = AuditStore(store_path).add_reviewer(name)
    click.echo(login_url(token, host=host, port=port))


@audit.command("serve")
@click.option("--store", "store_path", default="audit.sqlite", show_default=True, type=click.Path(dir_okay=False), help=_STORE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on; also the only host name accepted besides 127.0.0.1 and localhost.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option(
    "--overlap",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Share of samples shown to two reviewers, for the human-human agreement ceiling.",
)
def serve(store_path: str, host: str, port: int, overlap: float) -> None:
    """Serve the blind review UI for the samples in the audit store.

    Reviewers sign in with the URL from `audit add-reviewer`, see a prompt, the response(s) (a pair
    in an order drawn per reviewer) and the rubric, and label with buttons or keys (1-9 scores,
    a/b/t for a pair, s skip, u undo, n note). The judge's decision is shown only after the label is
    committed; a change after that is recorded separately. The session signing secret is kept in
    STORE.secret (delete it to sign everyone out).
    """
    from pathlib import Path

    from judge.core._errors import ConfigError

    if not Path(store_path).is_file():
        raise ConfigError(f"--store {store_path}: no audit store there (create it with `judgeloop audit sample`)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(
            f"warning: listening on {host}: the review UI speaks plain HTTP, so put it behind TLS before "
            "anyone reaches it over a network",
            err=True,
        )
    from judge.audit._web import run_server

    click.echo(f"review UI on http://{host}:{port}/ (store {store_path}, overlap {overlap})", err=True)
    run_server(store_path, host=host, port=port, overlap=overlap)


# ----------------------------------------------------------------------------------------------
# sampling, reports, the gate


def _budget(value: str) -> float:
    try:
        b = float(value)
    except ValueError:
        raise click.BadParameter(f"a count (50) or a fraction (0.05), got {value!r}") from None
    if b <= 0 or (b >= 1 and b != int(b)):
        raise click.BadParameter(f"a whole count >= 1 or a fraction in (0, 1), got {value!r}")
    return b


@audit.command("sample")
@click.argument("judgments", type=click.Path(dir_okay=False))
@click.option("--budget", required=True, help="Decisions to draw: a count (50) or a share of all decisions (0.05).")
@click.option("--store", "store_path", default="audit.sqlite", show_default=True, type=click.Path(dir_okay=False), help=_STORE_HELP)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the draw (recorded with every sample).")
@click.option("--data", type=click.Path(dir_okay=False), help="The judged dataset, so reviewers see the texts and the judge's exact input.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="The job config (its data and rubrics are used).")
@click.option("--rubric", "rubrics", multiple=True, help="Rubric id or path (default: the library rubrics the judgments name).")
@click.option("--jury", "jury_path", type=click.Path(dir_okay=False), help="Jury verdicts JSONL (for the split_jury stratum).")
@click.option("--add", "handpicked", multiple=True, help="Item id to add by hand (reviewed, never in the estimates); repeatable.")
@click.option("--uniform-share", default=0.5, show_default=True, type=click.FloatRange(0, 1), help="Share of the budget for the rubrics' rest cells.")
@click.option("--policy", default="strict", show_default=True, type=click.Choice(["strict", "average-probability"]), help="How a pair's two orders combine.")
def sample_cmd(judgments: str, budget: str, store_path: str, seed: int, data: str | None, config_path: str | None,
               rubrics: tuple[str, ...], jury_path: str | None, handpicked: tuple[str, ...], uniform_share: float,
               policy: str) -> None:
    """Draw an audit sample from JUDGMENTS within the budget and store it.

    \b
    The design is stratified, with exact inclusion probabilities: risk cells (possible injection,
    unscored, swap-inconsistent pair, split jury, low logprob margin, high entropy, extreme score)
    share (1 - uniform share) of the budget; every rubric's remaining decisions share the rest in
    proportion (at least two per rubric). Each sample records its stratum and inclusion probability;
    running the same command again adds nothing.
    """
    from judge.audit._job import sample_judgments

    rubric_refs = list(rubrics)
    if config_path:
        from judge.core._load import load_job_config

        cfg = load_job_config(config_path, {"output": judgments})
        data = data or str(cfg.data)
        rubric_refs = rubric_refs or list(cfg.rubrics)
    if not data:
        click.echo("note: no --data or --config: samples carry no texts, and injections cannot be flagged", err=True)
    result, added = sample_judgments(judgments, store_path, _budget(budget), seed=seed, data=data,
                                     rubric_refs=rubric_refs, jury_path=jury_path, handpicked=handpicked,
                                     uniform_share=uniform_share, policy=policy)
    click.echo(f"run {result.run_id}: {len(result.samples)} samples from {result.population} decisions ({added} new) -> {store_path}")
    for cell, info in sorted(result.cells.items()):
        click.echo(f"  {info['stratum']:<18} {cell[:28]:<28} N {info['N']:>6}  n {info['n']:>4}  pi {info['inclusion_prob']:.4f}")
    if handpicked:
        click.echo(f"  handpicked: {sum(s.stratum == 'handpicked' for s in result.samples)} samples (not in estimates)")


@audit.command("report")
@click.option("--store", "store_path", default="audit.sqlite", show_default=True, type=click.Path(dir_okay=False, exists=True), help=_STORE_HELP)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the full report as JSON here.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write a self-contained HTML page here.")
@click.option("--reps", default=500, show_default=True, type=click.IntRange(50, 100000), help="Bootstrap resamples.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
def report_cmd(store_path: str, json_path: str | None, html_path: str | None, reps: int, seed: int) -> None:
    """Judge-human agreement on the before-reveal labels: per scope, rubric, criterion and stratum."""
    from pathlib import Path

    from judge.audit._report import build_report, render_html
    from judge.audit._store import AuditStore
    from judge.core._io import atomic_write, write_json

    rep = build_report(AuditStore(store_path), reps=reps, seed=seed)
    if json_path:
        write_json(Path(json_path), rep)
    if html_path:
        atomic_write(Path(html_path), render_html(rep))
    click.echo(f"audit report  {store_path}: {rep['samples']} samples, {rep['labels']} label rows")
    for row in rep["rows"]:
        acc = (row.get("overall") or {}).get("accuracy") or {}
        ci = acc.get("ci") or [None, None]
        click.echo(f"  {row['rubric']} ({row['kind']}, judge {row['judge_fingerprint'][:12]}, prompt {row['prompt_version']}): "
                   f"{row['n_labelled']}/{row['n_samples']} labelled; agreement {acc.get('estimate')} [{ci[0]}, {ci[1]}]")
    for o in rep["overrides"]:
        click.echo(f"  OVERRIDE by {o['reviewer']} at {o['created_at']}: {o['reason']} ({o['scope']})")


@audit.command("gate")
@click.option("--store", "store_path", default="audit.sqlite", show_default=True, type=click.Path(dir_okay=False), help=_STORE_HELP)
@click.option("--min-agreement", default=0.8, show_default=True, type=click.FloatRange(0, 1), help="Bar for the agreement's lower confidence bound.")
@click.option("--min-labels", default=50, show_default=True, type=click.IntRange(0), help="Before-reveal labels needed at least.")
@click.option("--min-kappa", type=click.FloatRange(-1, 1), help="Bar for kappa's lower bound.")
@click.option("--critical-stratum", "critical", multiple=True, help="A stratum whose own bound must clear the bar; repeatable.")
@click.option("--alpha", default=0.05, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True), help="Error level of the bounds.")
@click.option("--scope", "scopes", multiple=True, help="fingerprint|rubric hash|prompt version to decide (default: the latest run's).")
@click.option("--canary-report", type=click.Path(dir_okay=False, exists=True), help="This run's eval report on the canary set.")
@click.option("--canary-accepted", type=click.Path(dir_okay=False, exists=True), help="The last accepted canary report (default: the one kept beside the store).")
@click.option("--override-by", help="Reviewer overriding a failing gate (needs --reason; recorded).")
@click.option("--reason", help="Why the override is justified (recorded).")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def gate_cmd(store_path: str, min_agreement: float, min_labels: int, min_kappa: float | None, critical: tuple[str, ...],
             alpha: float, scopes: tuple[str, ...], canary_report: str | None, canary_accepted: str | None,
             override_by: str | None, reason: str | None, as_json: bool) -> None:
    """Exit 0 only if human oversight clears the judge; 1 names what is missing; 2 on a usage error.

    Passes when at least --min-labels before-reveal labels exist and the anytime-valid lower bound of
    the design-weighted agreement clears --min-agreement, overall and in each --critical-stratum (and
    kappa's lower bound clears --min-kappa). A pass holds only for the judge fingerprint, rubric hash
    and prompt version it was measured on.
    """
    import sys
    from pathlib import Path

    from judge.audit._canary import canary_check, load_eval_report
    from judge.audit._gate import gate, override_scope
    from judge.audit._records import Override
    from judge.audit._store import AuditStore
    from judge.core._errors import ConfigError

    if (override_by is None) != (reason is None) or (reason is not None and not reason.strip()):
        raise click.UsageError("an override needs both --override-by NAME and a non-empty --reason TEXT")
    if not Path(store_path).is_file():
        raise ConfigError(f"--store {store_path}: no audit store there (create it with `judgeloop audit sample`)")
    store = AuditStore(store_path)
    baseline = Path(store_path + ".canary-accepted.json")
    canary = None
    if canary_report:
        accepted_path = canary_accepted or (str(baseline) if baseline.is_file() else None)
        current = load_eval_report(canary_report)
        if accepted_path:
            canary = canary_check(current, load_eval_report(accepted_path), alpha=alpha)
    kw = dict(min_agreement=min_agreement, min_labels=min_labels, min_kappa=min_kappa, critical_strata=critical,
              alpha=alpha, scopes=list(scopes) or None, canary=canary)
    decision = gate(store, **kw)  # type: ignore[arg-type]
    if override_by and not decision.passed:
        for sc in decision.scopes:
            store.add_override(Override(reviewer=override_by, reason=reason or "",
                                        scope=override_scope("default", sc, min_agreement, min_labels, min_kappa, critical)))
        decision = gate(store, **kw)  # type: ignore[arg-type]
    elif override_by:
        click.echo("note: the gate passed on its own; no override recorded", err=True)
    if decision.passed and not decision.overridden and canary_report:
        from judge.core._io import atomic_write

        atomic_write(baseline, Path(canary_report).read_text(encoding="utf-8"))  # the new last accepted canary
    if as_json:
        click.echo(decision.model_dump_json(indent=1))
    else:
        state = "PASS (OVERRIDDEN)" if decision.overridden else ("PASS" if decision.passed else "FAIL")
        click.echo(f"gate {state}  {store_path}")
        for sc, checks in decision.checks.items():
            click.echo(f"  scope {sc}")
            for c in checks:
                click.echo(f"    [{'ok' if c.passed else 'MISSING'}] {c.detail}")
        if canary_report and canary is None:
            click.echo("  canary: no accepted canary report yet; this one becomes the baseline on a pass")
        for o in decision.overrides:
            click.echo(f"  OVERRIDE by {o.reviewer} at {o.created_at}: {o.reason}")
    sys.exit(0 if decision.passed else 1)


@audit.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--store", "store_path", default="audit.sqlite", show_default=True, type=click.Path(dir_okay=False, exists=True), help=_STORE_HELP)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "label-studio"]), default="jsonl", show_default=True,
              help="jsonl: everything; csv: the label history; label-studio: import tasks (+ PATH.xml labelling config).")
def export_cmd(path: str, store_path: str, fmt: str) -> None:
    """Export the audit store to PATH."""
    from judge.audit._store import AuditStore

    store = AuditStore(store_path)
    n = {"jsonl": store.export_jsonl, "csv": store.export_csv, "label-studio": store.export_label_studio}[fmt](path)
    click.echo(f"{n} rows -> {path}")


@audit.command("import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@click.option("--store", "store_path", default="audit.sqlite", show_default=True, type=click.Path(dir_okay=False), help=_STORE_HELP)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "label-studio"]), default="jsonl", show_default=True,
              help="jsonl/csv: files written by `audit export`; label-studio: Label Studio's JSON export.")
def import_cmd(path: str, store_path: str, fmt: str) -> None:
    """Import PATH into the audit store (rows already there are skipped)."""
    from judge.audit._store import AuditStore

    store = AuditStore(store_path)
    n = {"jsonl": store.import_jsonl, "csv": store.import_csv, "label-studio": store.import_label_studio}[fmt](path)
    click.echo(f"{n} rows added from {path}")
