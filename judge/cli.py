"""The ``judgeloop`` command line.

One click group. ``--config job.yaml`` sets defaults; flags override. User errors print one line
(or a list of located problems) without a traceback and exit with status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from judge.core._errors import JudgeloopError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        from judge._cli_support import Stopped, stop_on_signals

        try:
            # SIGTERM/SIGINT unwind like an error, so backends shut their engines down.
            with stop_on_signals():
                return super().invoke(ctx)
        except JudgeloopError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except Stopped as exc:
            click.echo(f"stopped by {exc.name}; finished work is kept, rerun the same command to resume", err=True)
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-v", "--verbose", is_flag=True, help="Show the INFO logs of vLLM, Ray, transformers, torch (default: warnings)."
)
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """judgeloop: model-as-judge evaluation with traceable, resumable judgments.

    Logs, warnings and progress bars go to stderr; stdout carries only results (with --json,
    only the JSON). SIGTERM or Ctrl-C stops a job cleanly: the engine shuts down and a rerun
    resumes where it stopped.

    \b
    Typical use:
      judgeloop rubrics list                     the rubric library
      judgeloop judge --config configs/demo.yaml judge a dataset
      judgeloop -v judge --config ...            the same, with the engines' INFO logs
      judgeloop COMMAND --help                   a command's options
    """
    from judge.core._env import configure_logging

    if ctx.invoked_subcommand != "serve":  # a server's INFO log (startup, requests) is its interface
        configure_logging(verbose)


_BACKEND_OPTION = click.option(
    "--backend", help="Inference backend: vllm, hf or openai (the config's options it does not take are dropped)."
)

# ----------------------------------------------------------------------------------------------
# judge


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Job config YAML (sets defaults).")
@click.option(
    "--data",
    type=click.Path(),
    help="Input dataset: .jsonl, .json, .csv, .parquet, or a directory saved by datasets (see 'columns' to map names).",
)
@click.option("--output", type=click.Path(dir_okay=False), help="Judgments file to write (.jsonl).")
@click.option("--rubric", "rubrics", multiple=True, help="Rubric id or path; repeat for several.")
@_BACKEND_OPTION
@click.option("--model", help="Local model directory, or 'bundled'.")
@click.option("--batch-size", type=int, help="Requests per backend call.")
@click.option("--limit", type=int, help="Judge only the first N valid items.")
@click.option("--max-tokens", type=int, help="Most tokens the judge may generate per verdict.")
@click.option("--seed", type=int, help="Seed for sampling and random choices.")
@click.option("--scoring", type=click.Choice(["auto", "logprob", "json"]), help="How verdicts are read.")
@click.option("--policy", type=click.Choice(["strict", "average-probability"]), help="Pairs: how two orders combine.")
@click.option("--orders", type=click.Choice(["both", "AB", "random"]), help="Pairs: which orders are judged.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the summary as JSON, not a table; stdout carries only the JSON."
)
def judge(
    config_path: str | None,
    data: str | None,
    output: str | None,
    rubrics: tuple[str, ...],
    backend: str | None,
    model: str | None,
    batch_size: int | None,
    limit: int | None,
    max_tokens: int | None,
    seed: int | None,
    scoring: str | None,
    policy: str | None,
    orders: str | None,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Judge every item of a dataset by one or more rubrics.

    Judgments are appended to OUTPUT.part as they complete and renamed to OUTPUT at the end; a
    rerun of an interrupted job does only the missing work. Invalid rows go to
    OUTPUT-stem.rejects.jsonl with their line numbers; the job goes on without them.

    Columns that are not item fields are kept in each item's meta. The config's `columns` maps
    other names, e.g. `columns: {prompt: instruction, response: output}` for an AlpacaEval export.
    A row repeating an earlier id with other texts is a reject; with the same texts it is judged
    once. A job with no valid item (an empty dataset, or every row rejected) exits with status 2.
    """
    from judge._cli_support import load_cli_config, stdout_to_stderr
    from judge.runner._engine import run_job

    cfg = load_cli_config(
        config_path,
        {
            "data": data,
            "output": output,
            "rubrics": list(rubrics) or None,
            "judge.backend": backend,
            "judge.model": model,
            "batch_size": batch_size,
            "limit": limit,
            "sampling.max_tokens": max_tokens,
            "sampling.seed": seed,
            "scoring.method": scoring,
            "scoring.pairwise_policy": policy,
            "pairwise_orders": orders,
        },
    )
    with stdout_to_stderr(as_json):
        if cfg.jury is not None:
            from judge.runner import run_jury

            summary = run_jury(cfg, progress=not no_progress)
        elif cfg.cluster.enabled:
            from cluster import run_cluster_job

            summary = run_cluster_job(cfg, progress=not no_progress)
        else:
            summary = run_job(cfg, progress=not no_progress)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        click.echo(summary.table())
    if summary.items == 0:  # every row rejected, or no row at all: not a successful job
        from judge.runner._engine import job_paths

        report = getattr(summary, "data", None)
        raise JudgeloopError(
            report.nothing_to_judge(str(cfg.data), str(job_paths(cfg.output).rejects))
            if report is not None
            else f"nothing to judge: {cfg.data} holds no valid item"
        )


# ----------------------------------------------------------------------------------------------
# eval


@main.command("eval")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Judge config YAML (sets defaults).")
@click.option(
    "--data", required=True, type=click.Path(), help="Human-labelled set: .jsonl, .json, .csv, .parquet or a datasets directory."
)
@click.option("--output-dir", type=click.Path(file_okay=False), help="Where judgments and the report go.")
@click.option("--rubric", "rubrics", multiple=True, help="Rubric id or path; repeat for several.")
@_BACKEND_OPTION
@click.option("--model", help="Local model directory, or 'bundled'.")
@click.option("--scoring", type=click.Choice(["auto", "logprob", "json"]), help="How verdicts are read.")
@click.option("--policy", type=click.Choice(["strict", "average-probability"]), help="Pairs: how two orders combine.")
@click.option("--tie-threshold", type=float, help="average-probability: the tie band around 0.5.")
@click.option("--orders", type=click.Choice(["both", "AB", "random"]), help="Pairs: which orders are judged.")
@click.option("--batch-size", type=int, help="Requests per backend call.")
@click.option("--max-tokens", type=int, help="Most tokens the judge may generate per verdict.")
@click.option("--seed", type=int, help="Seed for sampling, order draws and bootstrap resampling.")
@click.option("--bootstrap", type=int, default=1000, show_default=True, help="Bootstrap resamples (0 = none).")
@click.option("--calibrate", is_flag=True, help="Fit the tie band (pairs) and jury weights on this set.")
@click.option("--save-config", type=click.Path(dir_okay=False), help="With --calibrate: write the calibrated judge config.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the report as JSON, not a table; stdout carries only the JSON."
)
def eval_(
    config_path: str | None,
    data: str,
    output_dir: str | None,
    rubrics: tuple[str, ...],
    backend: str | None,
    model: str | None,
    scoring: str | None,
    policy: str | None,
    tie_threshold: float | None,
    orders: str | None,
    batch_size: int | None,
    max_tokens: int | None,
    seed: int | None,
    bootstrap: int,
    calibrate: bool,
    save_config: str | None,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Measure a judge configuration against human labels.

    DATA holds one labelled row per line or record: pairwise rows {"id"?, "prompt", "response_a",
    "response_b", "label": "a"|"b"|"tie", "meta"?} or pointwise rows {"id"?, "prompt", "response",
    "reference"?, "human_score", "scale": [min, max], "meta"?}; other columns are kept in meta. The
    config's `columns` and `labels` map other names and spellings, e.g. an Arena export's `winner:
    model_a` (see the README). Reports accuracy, Cohen's kappa,
    rank correlations, swap consistency, position and length bias, the confusion matrix, bootstrap
    95% intervals and per-meta subsets; the JSON report is written beside the judgments.
    """
    from judge._cli_support import load_cli_config, stdout_to_stderr
    from judge.eval import default_output_dir, eval_table, run_eval

    if save_config and not calibrate:
        raise click.UsageError("--save-config needs --calibrate")
    cfg = load_cli_config(
        config_path,
        {
            "data": data,
            "output": "-",
            "rubrics": list(rubrics) or None,
            "judge.backend": backend,
            "judge.model": model,
            "batch_size": batch_size,
            "sampling.max_tokens": max_tokens,
            "sampling.seed": seed,
            "scoring.method": scoring,
            "scoring.pairwise_policy": policy,
            "scoring.tie_threshold": tie_threshold,
            "pairwise_orders": orders,
        },
    )
    out_dir = Path(output_dir) if output_dir else default_output_dir(cfg, Path(data))
    with stdout_to_stderr(as_json):
        report = run_eval(
            cfg,
            data,
            output_dir=out_dir,
            progress=not no_progress,
            bootstrap=bootstrap,
            calibrate_=calibrate,
            save_path=save_config,
        )
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(eval_table(report))


# ----------------------------------------------------------------------------------------------
# rubrics, models (the library and the bundled model)

from judge._cli_library import models, rubrics  # noqa: E402

main.add_command(rubrics)
main.add_command(models)


# ----------------------------------------------------------------------------------------------
# serve


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def serve(args: tuple[str, ...]) -> None:
    """Serve a judge model over HTTP (vLLM's OpenAI-compatible server) for the openai backend.

    \b
    judgeloop serve --model bundled --port 8000 --enforce-eager
    Options: --model (path or 'bundled'), --host (default 127.0.0.1), --port (default 8000);
    every other argument goes to `vllm serve` unchanged. `--help` lists them.
    """
    from judge.serve import main as serve_main

    serve_main(list(args))


# ----------------------------------------------------------------------------------------------
# audit (human oversight; its subcommands live with the audit package)

from judge.audit._cli import audit  # noqa: E402

main.add_command(audit)

# training (RLAIF; the commands live with the rlaif package)

from rlaif._cli import train_group  # noqa: E402

main.add_command(train_group)

# preference datasets (RLAIF; built from judged runs)

from rlaif._prefs_cli import prefs_group  # noqa: E402

main.add_command(prefs_group)

# candidate generation (RLAIF; a policy writes k candidates per prompt)

from rlaif._gen_cli import generate_command  # noqa: E402

main.add_command(generate_command)

# the gated RLAIF loop

from rlaif._loop_cli import loop_command, report_command  # noqa: E402

main.add_command(loop_command)
main.add_command(report_command)


if __name__ == "__main__":
    main()
