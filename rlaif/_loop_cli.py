"""``judgeloop loop``: the gated RLAIF loop (registered by :mod:`judge.cli`)."""

from __future__ import annotations

import sys

import click

__all__ = ["loop_command", "report_command"]


@click.command("loop")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True), required=True,
              help="The loop config (configs/rlaif_loop.yaml).")
@click.option("--rounds", type=click.IntRange(1), help="Rounds to finish (overrides the config; raise it to go on).")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Where the rounds go (overrides run_dir).")
@click.option("--until-gate", is_flag=True, help="At a failing gate, wait for reviewers' labels instead of stopping.")
@click.option("--override-by", help="Person letting a failing gate of the current round pass (needs --reason; recorded).")
@click.option("--reason", help="Why the override is justified (recorded in the audit store and the round).")
@click.option("--no-progress", is_flag=True, help="No step lines or progress bars on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the rounds' records as JSON on stdout.")
def loop_command(config_path: str, rounds: int | None, run_dir: str | None, until_gate: bool, override_by: str | None,
                 reason: str | None, no_progress: bool, as_json: bool) -> None:
    """Run rounds of generate -> judge -> audit sample -> gate -> preferences -> monitors -> train -> evaluate.

    \b
    Each round writes its candidates, judgments, audit sample, gate decision, preference dataset,
    training mix (with its synthetic share), checkpoint and evaluation (the new policy's win rate
    over the previous one, both orders, with an interval) under RUN_DIR/round-N/. A killed loop
    resumes at the step after the last finished one and recomputes nothing.

    \b
    The gate: a round's feedback trains the next policy only when human labels of that round's
    audit sample clear the judge (judgeloop audit serve). Otherwise the loop stops with exit
    status 3 and says what is missing; rerun when reviewers have labelled, wait with
    --until-gate, or let it pass with --override-by NAME --reason TEXT (kept in the audit store
    and in the round's record). The monitors (diversity, tails, length, repetition, refusals,
    judge-score inflation) stop the round before training in the same way when a threshold in
    `monitors:` is crossed. An override lets pass only what stopped this run. Exit status: 0 done,
    2 bad config or input, 3 stopped at a gate or an alarm.

    \b
      judgeloop loop --config configs/rlaif_loop.yaml
      judgeloop loop --config configs/rlaif_loop.yaml --until-gate
      judgeloop loop --config configs/rlaif_loop.yaml --override-by alice --reason "spot-checked 30 by hand"
    """
    import json

    from judge._cli_support import stdout_to_stderr
    from rlaif._loop import LoopStopped, run_loop
    from rlaif._loop_config import load_loop_config

    if (override_by is None) != (reason is None) or (reason is not None and not reason.strip()):
        raise click.UsageError("an override needs both --override-by NAME and a non-empty --reason TEXT")
    cfg = load_loop_config(config_path, {"rounds": rounds, "run_dir": run_dir})
    override = (override_by, reason) if override_by and reason else None
    try:
        with stdout_to_stderr(as_json):
            result = run_loop(cfg, until_gate=until_gate, override=override, progress=not no_progress)
    except LoopStopped as exc:
        click.echo(f"stopped: {exc}", err=True)
        sys.exit(3)
    if as_json:
        click.echo(json.dumps({str(r): s for r, s in result.rounds.items()}, indent=1, default=str))
    else:
        click.echo(result.table())


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="The page to write (default RUN_DIR/report.html).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="The data to write (default RUN_DIR/report.json).")
@click.option("--examples", default=3, show_default=True, type=click.IntRange(0, 100), help="Prompts shown with every round's answer.")
def report_command(run_dir: str, html_path: str | None, json_path: str | None, examples: int) -> None:
    """Write one self-contained HTML page (and JSON) about every round of the loop in RUN_DIR.

    \b
    Per round: the judge's scores, judge-human agreement on the round's audit sample with its
    interval, the gate's decision and every override, bias diagnostics, the new policy's win rate
    over the previous one, the synthetic share of the training mix, monitors and alarms, scores per
    principle, and example outputs of every round's policy side by side. The page loads nothing
    and runs no script: open it anywhere.
    """
    from pathlib import Path

    from judge.core._io import atomic_write, write_json
    from rlaif._report import build_round_report, render_round_report

    rep = build_round_report(run_dir, examples=examples)
    html = Path(html_path or Path(run_dir) / "report.html")
    data = Path(json_path or Path(run_dir) / "report.json")
    write_json(data, rep, default=str)
    atomic_write(html, render_round_report(rep))
    click.echo(f"report  {html}  ({len(rep['rounds'])} rounds; data {data})")
