"""``judgeloop prefs build``: a preference dataset from a judged run (registered by :mod:`judge.cli`)."""

from __future__ import annotations

import click

__all__ = ["prefs_group"]


@click.group("prefs")
def prefs_group() -> None:
    """Preference datasets for training (DPO, reward, KTO) from the judge's verdicts."""


@prefs_group.command("build")
@click.argument("run_dir", type=click.Path(exists=True))
@click.option("--data", type=click.Path(exists=True), required=True, help="The dataset the run judged (the items' texts).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Dataset directory to write.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Preference config YAML (sets defaults).")
@click.option("--rubric", help="Rubric id or YAML path whose judgments are used (needed when the run has several).")
@click.option("--source", type=click.Choice(["auto", "pairwise", "pointwise"]), help="Which judgments make pairs.")
@click.option("--min-margin", type=float, help="Pairwise: |P(A wins) - 0.5| averaged over the orders, at least.")
@click.option("--pointwise-pairs", type=click.Choice(["best_worst", "all"]), help="Pointwise: which pairs of a prompt.")
@click.option("--min-score-margin", type=float, help="Pointwise: overall score difference, at least.")
@click.option("--max-length-ratio", type=float, help="Chosen / rejected characters above this is too long.")
@click.option("--length-mode", type=click.Choice(["drop", "weight"]), help="Drop a too-long pair or down-weight it.")
@click.option("--test-fraction", type=float, help="Share of prompts held out.")
@click.option("--seed", type=int, help="Seed of the held-out split.")
@click.option("--audit-store", type=click.Path(dir_okay=False), help="Audit store: quarantined pairs go to it; gate status per pair.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON; stdout carries only the JSON.")
def build(run_dir: str, data: str, out_dir: str, config_path: str | None, rubric: str | None, source: str | None,
          min_margin: float | None, pointwise_pairs: str | None, min_score_margin: float | None,
          max_length_ratio: float | None, length_mode: str | None, test_fraction: float | None, seed: int | None,
          audit_store: str | None, as_json: bool) -> None:
    """Build a TRL preference dataset with provenance from RUN_DIR (a `judgeloop judge` output directory).

    \b
    Pairs come from swap-consistent pair verdicts above --min-margin, and from the pointwise
    scores of several responses to one prompt (grouped by meta.prompt_id, else the prompt text).
    Inconsistent, tied, unscored and low-margin pairs are counted, never used. Then: length
    balance, near-duplicate removal, quarantine of pairs whose chosen text tries to steer the
    judge (sent to --audit-store for review), a seeded split by prompt, and KTO rows.

    \b
    OUT_DIR holds a datasets DatasetDict (train/test), train/test .parquet and .jsonl, kto/, a
    dataset card README.md and manifest.json; it is written atomically, and a rerun with the same
    inputs and config changes nothing. Exits with status 2 when no pair survives.

    \b
      judgeloop prefs build runs/round0 --data runs/round0/candidates.jsonl --out runs/round0/prefs
      judgeloop train dpo --config configs/dpo.yaml --data runs/round0/prefs
    """
    from judge._cli_support import stdout_to_stderr
    from rlaif._prefs_build import build_preferences
    from rlaif._prefs_records import load_prefs_config

    cfg = load_prefs_config(config_path, {
        "rubric": rubric, "source": source, "min_margin": min_margin, "pointwise_pairs": pointwise_pairs,
        "min_score_margin": min_score_margin, "max_length_ratio": max_length_ratio, "length_mode": length_mode,
        "test_fraction": test_fraction, "seed": seed,
    })
    with stdout_to_stderr(as_json):
        report = build_preferences(run_dir, data, out_dir, cfg, audit_store)
    click.echo(report.to_json() if as_json else report.table())
