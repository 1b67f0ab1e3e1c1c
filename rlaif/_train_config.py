"""The training config: what ``judgeloop train dpo | reward | kto`` reads, validated before any model loads.

The config has our own typed fields (model, data, output, the knobs every run sets) and a ``trl``
section passed unchanged to TRL's config class (``DPOConfig``, ``RewardConfig``, ``KTOConfig``). That
section is checked against the dataclass fields of the class, so a typo is an error naming the key and
the allowed ones, and each value against the field's annotation.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judge.core._errors import ConfigError

__all__ = ["ALGORITHMS", "LoraSettings", "RaySettings", "TrainConfig", "load_train_config", "trl_config_class"]

Algorithm = Literal["dpo", "reward", "kto"]
ALGORITHMS: tuple[str, ...] = ("dpo", "reward", "kto")

#: Arguments of TRL's config that this package sets itself, and the field of ours that decides each.
#: CPU training needs use_cpu/bf16 fixed; where checkpoints go and the seed are part of the run's
#: identity (provenance), so they are ours, not a pass-through.
MANAGED: dict[str, str] = {
    "output_dir": "output_dir",
    "use_cpu": "(set from the machine: no GPU means use_cpu=True)",
    "bf16": "(always False on CPU: bf16 weights make small updates vanish)",
    "fp16": "(always False on CPU)",
    "report_to": "(always 'none'; progress goes to stderr)",
    "seed": "seed",
    "learning_rate": "learning_rate",
    "max_steps": "max_steps",
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "max_length": "max_length",
    "beta": "beta",
    "logging_steps": "(always 1: the summary reports the first and last loss)",
    "disable_tqdm": "(progress is printed on stderr by judgeloop)",
}


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraSettings(_Cfg):
    """Train a LoRA adapter through peft instead of every weight."""

    r: int = Field(default=8, ge=1, le=1024, description="Rank of the LoRA update matrices.")
    alpha: int = Field(default=16, ge=1, description="LoRA scaling numerator (lora_alpha).")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA inputs.")
    target_modules: list[str] | str = Field(
        default="all-linear", description="Module names to adapt, or 'all-linear' (peft's shorthand)."
    )
    merge: bool = Field(
        default=True,
        description="Merge the adapter into the weights before saving, so the checkpoint is a plain model "
        "directory that the next round (and vLLM) can load by path. False saves the adapter only.",
    )


class RaySettings(_Cfg):
    """Run the same trainer on Ray Train's TorchTrainer: one worker per GPU, or CPU workers with gloo."""

    workers: int = Field(default=2, ge=1, description="Training workers (data-parallel ranks).")
    use_gpu: bool = Field(default=False, description="One GPU per worker (NCCL); False trains on CPUs with gloo.")
    cpus_per_worker: float = Field(default=1.0, gt=0, description="CPUs reserved by each worker.")
    address: str | None = Field(
        default=None,
        description="None starts a private local Ray (stopped at the end); 'auto' or 'ray://host:port' joins one.",
    )


class TrainConfig(_Cfg):
    """One training run: an algorithm, a base model, a preference dataset and where the checkpoint goes."""

    algorithm: Algorithm = Field(description="dpo, reward (a Bradley-Terry reward model) or kto.")
    model: str = Field(description="Base model directory (the policy, or the reward model's backbone), or 'bundled'.")
    ref_model: str | None = Field(
        default=None,
        description="Reference model directory for dpo/kto: the previous round's checkpoint, by path. None uses "
        "the base model's own files (TRL reloads them from disk).",
    )
    data: str = Field(
        description="Training rows in TRL's conversational format: a .jsonl or .parquet file, or a directory "
        "(saved by datasets.save_to_disk, or holding train.parquet / train.jsonl)."
    )
    split: str = Field(default="train", description="Split to train on when data holds several.")
    output_dir: str = Field(description="Final checkpoint directory (written atomically, with provenance.json).")
    seed: int = Field(default=0, ge=0, description="Seed of initialisation, shuffling and dropout.")
    learning_rate: float = Field(default=5e-6, gt=0, le=1.0, description="Peak learning rate.")
    max_steps: int = Field(default=-1, ge=-1, description="Optimiser steps; -1 runs `epochs` epochs.")
    epochs: float = Field(default=1.0, gt=0, description="Passes over the data when max_steps is -1.")
    batch_size: int = Field(default=4, ge=1, description="Rows per device (per Ray worker) per step.")
    gradient_accumulation_steps: int = Field(default=1, ge=1, description="Micro-batches per optimiser step.")
    max_length: int | None = Field(
        default=1024, ge=8, description="Longest tokenised prompt+completion; longer rows are truncated or dropped by TRL."
    )
    beta: float | None = Field(
        default=None, gt=0, description="dpo/kto: strength of the pull towards the reference (TRL's default: 0.1)."
    )
    lora: LoraSettings | None = Field(default=None, description="Train a LoRA adapter (peft); None trains every weight.")
    ray: RaySettings | None = Field(default=None, description="Train on Ray Train workers; None trains in this process.")
    trl: dict[str, Any] = Field(
        default_factory=dict,
        description="Further arguments of TRL's DPOConfig / RewardConfig / KTOConfig, passed unchanged "
        "(e.g. loss_type, warmup_steps, save_steps). Unknown names are errors.",
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.algorithm == "reward":
            if self.ref_model is not None:
                raise ValueError("@ref_model: a reward model has no reference model; remove ref_model")
            if self.beta is not None:
                raise ValueError("@beta: beta is a dpo/kto setting; a reward model does not take it")
        check_trl_section(self.algorithm, self.trl)
        return self

    def trl_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the TRL config class, except output_dir and the CPU switches."""
        kw: dict[str, Any] = {
            "seed": self.seed,
            "learning_rate": self.learning_rate,
            "max_steps": self.max_steps,
            "num_train_epochs": self.epochs,
            "per_device_train_batch_size": self.batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "max_length": self.max_length,
            "logging_steps": 1,
            "disable_tqdm": True,
            "report_to": "none",
            "save_strategy": "no",
        }
        if self.beta is not None:
            kw["beta"] = self.beta
        return {**kw, **self.trl}


def trl_config_class(algorithm: str) -> type:
    """TRL's config dataclass for ``algorithm`` (imports trl's config module only, not the trainers)."""
    if algorithm == "dpo":
        from trl.trainer.dpo_config import DPOConfig as cls
    elif algorithm == "reward":
        from trl.trainer.reward_config import RewardConfig as cls
    else:
        from trl.trainer.kto_config import KTOConfig as cls
    return cls


def check_trl_section(algorithm: str, section: dict[str, Any]) -> None:
    """Check the ``trl`` pass-through against TRL's dataclass: names, then each value's type."""
    if not section:
        return
    try:
        cls = trl_config_class(algorithm)
    except ImportError:
        raise ValueError("@trl: training needs TRL: pip install 'judgeloop[train]'") from None
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key, value in section.items():
        if key in MANAGED:
            ours = MANAGED[key]
            hint = f"set the top-level field {ours!r}" if not ours.startswith("(") else f"judgeloop sets it {ours}"
            raise ValueError(f"@trl.{key}: {key} is not passed through; {hint}")
        if key not in fields:
            allowed = sorted(n for n in fields if n not in MANAGED and not n.startswith("_"))
            raise ValueError(
                f"@trl.{key}: unknown {cls.__name__} argument {key!r}; allowed: {', '.join(allowed)}"
            )
        _check_value(cls, key, value)


def _check_value(cls: type, key: str, value: Any) -> None:
    """Validate one value against the dataclass annotation (lax: 1 is a fine float, '1' is not)."""
    import pydantic

    try:
        hint = typing.get_type_hints(cls)[key]
        adapter = pydantic.TypeAdapter(hint)
    except Exception:  # an annotation pydantic cannot express (a torch type, a forward ref): TRL checks it
        return
    try:
        adapter.validate_python(value, strict=False)
    except pydantic.ValidationError as exc:
        msg = exc.errors(include_url=False)[0]["msg"]
        raise ValueError(f"@trl.{key}: {msg} (given: {value!r})") from None


def load_train_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Load a training config file (optional) and apply dotted-key overrides from the command line.

    A file sets defaults; required fields it leaves out (data, output_dir) may come from the flags,
    so the file alone is validated with placeholders for them. Errors name file, line, field, value.
    """
    from judge.core._yaml import load_with_overrides

    placeholders = {"algorithm": (overrides or {}).get("algorithm") or "dpo"}
    return load_with_overrides(path, TrainConfig, ConfigError, "training config", overrides, placeholders)
