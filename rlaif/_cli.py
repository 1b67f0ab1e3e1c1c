"""``judgeloop train dpo | reward | kto``: the training commands (registered by :mod:`judge.cli`)."""

from __future__ import annotations

import json
from typing import Any, Callable

import click

__all__ = ["train_group"]


@click.group("train")
def train_group() -> None:
    """Train a policy (dpo, kto) or a reward model (reward) with TRL on preference data.

    \b
    The data is TRL's conversational format, as `judgeloop prefs build` writes it:
      dpo, reward: prompt / chosen / rejected, each a list of {role, content} messages
      kto:         prompt / completion (message lists) and label (true = desirable)
    in a .jsonl or .parquet file, or a directory (datasets.save_to_disk, or train.parquet /
    train.jsonl inside); a README.md or provenance.json beside it is recorded.

    \b
    The checkpoint in OUTPUT_DIR is written atomically with provenance.json (base model and its
    fingerprint, dataset fingerprint, config, versions, seed, metrics). A rerun with the same
    config, model and data does nothing. The next round passes the checkpoint by path as
    --model and --ref-model. With `ray:` in the config the same trainer runs on Ray Train
    workers (one per GPU; CPU workers with gloo).

    \b
      judgeloop train dpo --config configs/dpo.yaml
      judgeloop train dpo --config configs/dpo.yaml --max-steps 2 --output-dir runs/try
      judgeloop train reward --config configs/reward.yaml
    """


def _options(fn: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Training config YAML (sets defaults)."),
        click.option("--model", help="Base model directory, or 'bundled'."),
        click.option("--ref-model", help="dpo/kto: reference model directory (the previous round's checkpoint)."),
        click.option("--data", type=click.Path(), help="Training rows: .jsonl, .parquet or a datasets directory."),
        click.option("--split", help="Split to train on when the data holds several (default: train)."),
        click.option("--output-dir", type=click.Path(file_okay=False), help="Final checkpoint directory."),
        click.option("--seed", type=int, help="Seed of initialisation, shuffling and dropout."),
        click.option("--learning-rate", type=float, help="Peak learning rate."),
        click.option("--max-steps", type=int, help="Optimiser steps (-1: run --epochs epochs)."),
        click.option("--epochs", type=float, help="Passes over the data when max_steps is -1."),
        click.option("--batch-size", type=int, help="Rows per device (per Ray worker) per step."),
        click.option("--max-length", type=int, help="Longest tokenised prompt+completion."),
        click.option("--beta", type=float, help="dpo/kto: pull towards the reference."),
        click.option("--lora/--no-lora", default=None, help="Train a LoRA adapter (peft) instead of every weight."),
        click.option("--ray-workers", type=int, help="Train on this many Ray Train workers (adds a ray section)."),
        click.option("--overwrite", is_flag=True, help="Replace a checkpoint in OUTPUT_DIR trained from something else."),
        click.option("--no-progress", is_flag=True, help="Do not print one line per step on stderr."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON; stdout carries only the JSON."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _run(algorithm: str, config_path: str | None, overwrite: bool, no_progress: bool, as_json: bool, **flags: Any) -> None:
    from judge._cli_support import stdout_to_stderr
    from judge.core._errors import ConfigError
    from rlaif._train import train
    from rlaif._train_config import load_train_config

    lora = flags.pop("lora")
    workers = flags.pop("ray_workers")
    overrides = {
        "algorithm": algorithm,
        "model": flags["model"],
        "ref_model": flags["ref_model"],
        "data": flags["data"],
        "split": flags["split"],
        "output_dir": flags["output_dir"],
        "seed": flags["seed"],
        "learning_rate": flags["learning_rate"],
        "max_steps": flags["max_steps"],
        "epochs": flags["epochs"],
        "batch_size": flags["batch_size"],
        "max_length": flags["max_length"],
        "beta": flags["beta"],
        "ray.workers": workers,
    }
    if config_path is not None:
        from pathlib import Path

        from judge.core._yaml import load_yaml

        data, _ = load_yaml(Path(config_path).read_text(encoding="utf-8"), config_path, ConfigError)
        if isinstance(data, dict) and data.get("algorithm", algorithm) != algorithm:
            raise ConfigError(
                f"{config_path}: algorithm: the config is for {data['algorithm']!r}, but the command is "
                f"`train {algorithm}`; run `judgeloop train {data['algorithm']}` or change the config"
            )
    cfg = load_train_config(config_path, overrides)
    if lora is True and cfg.lora is None:
        from rlaif._train_config import LoraSettings

        cfg = cfg.model_copy(update={"lora": LoraSettings()})
    elif lora is False:
        cfg = cfg.model_copy(update={"lora": None})
    with stdout_to_stderr(as_json):
        result = train(cfg, progress=not no_progress, overwrite=overwrite)
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.table())


def _command(algorithm: str, doc: str) -> click.Command:
    def cmd(**kw: Any) -> None:
        _run(algorithm, **kw)

    cmd.__doc__ = doc
    return train_group.command(algorithm)(_options(cmd))


_command(
    "dpo",
    """Direct Preference Optimisation (TRL's DPOTrainer) on prompt/chosen/rejected rows.

    The reference model is --ref-model (the previous round's checkpoint, by path), or the base
    model's own files. Weights are trained in float32 on CPU.
    """,
)
_command(
    "reward",
    """A Bradley-Terry reward model (TRL's RewardTrainer) on prompt/chosen/rejected rows.

    The checkpoint is a sequence-classification model with one output: load it with
    rlaif.RewardModel(path) to score (prompt, completion) pairs, or pass that object to
    GRPOTrainer(reward_funcs=[...]).
    """,
)
_command(
    "kto",
    """Kahneman-Tversky Optimisation (TRL's KTOTrainer) on unpaired prompt/completion/label rows.

    label is true for a desirable completion and false for an undesirable one.
    """,
)
