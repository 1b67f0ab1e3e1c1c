"""``judgeloop generate``: a policy writes k candidates per prompt (registered by :mod:`judge.cli`)."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["generate_command", "parse_sets"]


def parse_sets(values: tuple[str, ...]) -> dict[str, Any]:
    """``--set key=value`` pairs as dotted-key overrides; each value is read as YAML (``3``, ``true``, ``[a, b]``).

    Raises:
        click.BadParameter: an entry without ``=`` or with an empty key.
    """
    import yaml

    out: dict[str, Any] = {}
    for entry in values:
        key, sep, raw = entry.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{entry!r}: expected KEY=VALUE, e.g. generate.k=8", param_hint="--set")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw  # not YAML: the text as it is
    return out


@click.command("generate")
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False),
    help="Round config YAML with a `generate:` section (the same file `judgeloop judge` reads).",
)  # fmt: skip
@click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE",
    help="Override one config value by its dotted key, e.g. --set generate.k=8 --set generate.sampling.seed=1 "
    "--set cluster.enabled=true; repeatable. VALUE is read as YAML.",
)  # fmt: skip
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON; stdout carries only the JSON.")
def generate_command(config_path: str, sets: tuple[str, ...], no_progress: bool, as_json: bool) -> None:
    """Write k candidate responses per prompt with a policy model (an RLAIF round's first step).

    The config's `generate:` section names the prompts (data: JSONL, JSON, CSV, Parquet or a
    datasets directory, with prompt and optional id / system columns), the policy (backend,
    model, options; `model: bundled` is the prepared SmolLM2-135M-Instruct), k, sampling
    (temperature > 0, top_p, max_tokens, seed) and the round. With `cluster.enabled: true` the
    policy runs on a Ray pool of workers.

    Every candidate records its round, policy model and fingerprint, sampling parameters with
    its own seed (derived from the base seed, the prompt id and its index) and `synthetic: true`.
    The candidates file (generate.output, by default the config's `data`) is a pointwise dataset
    for `judgeloop judge`: id, prompt and response, everything else in each item's meta
    (meta.prompt_id groups a prompt's candidates for `judgeloop prefs build`). With
    `generate.pairs: true`, OUTPUT-stem.pairs.jsonl also holds every pair of a prompt's
    candidates for a pairwise rubric.

    Candidates are appended as they complete; a killed run resumes where it stopped and a rerun
    of a finished one recomputes nothing. A failed generation is written as failed, is not
    judged, and is retried by the next run. Exits with status 2 when no prompt is valid.

    \b
      judgeloop generate --config configs/rlaif_round.yaml
      judgeloop judge    --config configs/rlaif_round.yaml
      judgeloop prefs build runs/round0 --data runs/round0/candidates.jsonl --out runs/round0/prefs
    """
    from judge._cli_support import stdout_to_stderr
    from judge.core._load import load_generate_config
    from judge.core._errors import JudgeloopError
    from rlaif._generate import generate_candidates

    gen, cluster = load_generate_config(config_path, parse_sets(sets))
    with stdout_to_stderr(as_json):
        summary = generate_candidates(gen, progress=not no_progress, cluster=cluster)
    click.echo(json.dumps(summary.to_dict(), indent=2) if as_json else summary.table())
    if summary.prompts == 0:
        first = summary.data.first_reject if summary.data is not None else None
        raise JudgeloopError(
            f"nothing to generate: {gen.data} holds no valid prompt"
            + (f" (first reject, {first}; all in {summary.rejects})" if first else "")
        )
