"""The loop config: what ``judgeloop loop`` reads (``configs/rlaif_loop.yaml``), validated before anything runs.

One file says everything a round needs: the prompts and the starting policy, how the policy samples
candidates, the judge, the audit sample and the gate, how preferences are built, how the policy is
trained (a :class:`~rlaif.TrainConfig` without its per-round paths), the data policy across rounds,
the human-written data mixed in, and how each new policy is evaluated against the previous one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from judge.core._config import ClusterConfig, GenerationSamplingConfig, JudgeSpec
from judge.core._errors import ConfigError
from rlaif._prefs_records import PrefsConfig

__all__ = ["HumanData", "LoopAudit", "LoopConfig", "LoopEval", "LoopGenerate", "load_loop_config"]


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoopGenerate(_Cfg):
    """How the policy of a round writes its candidates (the policy's model is the round's checkpoint)."""

    backend: str = Field(default="vllm", description="Backend the policy runs on: vllm (GPU or CPU) or hf.")
    options: dict[str, Any] = Field(default_factory=dict, description="Backend options (dtype, max_model_len, ...).")
    k: int = Field(default=4, ge=2, le=64, description="Candidates per prompt (at least 2, to make pairs).")
    sampling: GenerationSamplingConfig = Field(
        default_factory=lambda: GenerationSamplingConfig(temperature=0.8, top_p=0.95, max_tokens=128, seed=0),
        description="Sampling of candidates: temperature > 0; each round adds its number to the seed.",
    )
    batch_size: int = Field(default=64, ge=1, description="Requests sent to the policy at once.")

    @field_validator("sampling")
    @classmethod
    def _sampled(cls, v: GenerationSamplingConfig) -> GenerationSamplingConfig:
        if v.temperature <= 0:
            raise ValueError(f"temperature {v.temperature}: k candidates of one prompt need temperature > 0")
        return v


class LoopAudit(_Cfg):
    """The audit sample every round draws from its judgments, and the gate it must pass."""

    store: Path | None = Field(default=None, description="Audit store (SQLite). None: <run_dir>/audit.sqlite.")
    budget: float = Field(default=50, gt=0, description="Decisions sampled per round: a count or a share (< 1).")
    seed: int = Field(default=0, description="Seed of the draw; each round adds its number.")
    min_agreement: float = Field(default=0.8, ge=0.0, le=1.0, description="Bar for the agreement's lower bound.")
    min_labels: int = Field(default=50, ge=0, description="Before-reveal labels of this round's sample needed.")
    min_kappa: float | None = Field(default=None, ge=-1.0, le=1.0, description="Bar for kappa's lower bound.")
    critical_strata: list[str] = Field(default_factory=list, description="Strata whose own bound must clear the bar.")
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0, description="Error level of the bounds.")
    canary: Path | None = Field(
        default=None,
        description="A frozen human-labelled anchor set (`judgeloop eval` format) re-scored with every round's "
        "judging; a drop in agreement against the last accepted round fails the gate.",
    )
    canary_accepted: Path | None = Field(
        default=None, description="The last accepted canary report. None: <store>.canary-accepted.json."
    )
    poll_s: float = Field(default=30.0, gt=0.0, description="--until-gate: seconds between looks at the store.")


class HumanData(_Cfg):
    """Human-written preference rows mixed into every training set (against model collapse)."""

    path: Path = Field(description="Rows in TRL's conversational format (prompt / chosen / rejected), JSONL or Parquet.")
    share: float = Field(
        ge=0.0, lt=1.0,
        description="Share of each training set that is human-written (e.g. 0.2). Capped by the rows available; "
        "the share actually reached is recorded with the round.",
    )


class LoopEval(_Cfg):
    """Each round's new policy against the previous one, judged in both orders."""

    prompts: Path | None = Field(default=None, description="Held-out prompts. None: the loop's prompts.")
    rubric: str = Field(default="instruction_following", description="A pairwise rubric (id or path).")
    max_tokens: int = Field(default=128, ge=1, description="Tokens per evaluation answer (greedy).")
    limit: int | None = Field(default=None, ge=1, description="Evaluate on the first N prompts only.")
    reps: int = Field(default=1000, ge=100, description="Bootstrap resamples of the win rate's interval.")


class LoopConfig(_Cfg):
    """N rounds of generate, judge, audit, gate, preferences, train and evaluate."""

    run_dir: Path = Field(description="Every round's artefacts go under <run_dir>/round-<n>/.")
    rounds: int = Field(default=2, ge=1, description="Rounds to run (raise it and rerun to go on).")
    policy: str = Field(default="bundled", description="The round-0 policy: a model directory or 'bundled'.")
    prompts: Path = Field(description="The prompts candidates are written for (any dataset format `judge` reads).")
    columns: dict[str, str] = Field(default_factory=dict, description="Field -> column of the prompts file (prompt, id, system).")
    limit: int | None = Field(default=None, ge=1, description="Use only the first N prompts.")
    generate: LoopGenerate = Field(default_factory=LoopGenerate, description="How candidates are sampled.")
    judge: JudgeSpec = Field(default_factory=JudgeSpec, description="The judge (as in configs/judge.yaml).")
    audit: LoopAudit = Field(default_factory=LoopAudit, description="Audit sample and gate.")
    prefs: PrefsConfig = Field(default_factory=PrefsConfig, description="How preference pairs are built.")
    train: dict[str, Any] = Field(
        default_factory=lambda: {"algorithm": "dpo"},
        description="A training config (configs/dpo.yaml) without model, ref_model, data and output_dir, "
        "which every round sets: the previous round's checkpoint, this round's mix, <round>/policy.",
    )
    data_policy: Literal["accumulate", "replace"] = Field(
        default="accumulate",
        description="accumulate: each round trains on every earlier round's pairs too (keeps error bounded, "
        "Gerstgrasser et al. 2024); replace: on this round's only.",
    )
    human_data: HumanData | None = Field(default=None, description="Human-written rows mixed into every training set.")
    eval: LoopEval = Field(default_factory=LoopEval, description="Win rate of each new policy over the previous one.")
    measure_kl: bool = Field(
        default=True,
        description="Monitor the KL of each round's policy to the starting policy on its evaluation answers "
        "(both models loaded with transformers for the measurement).",
    )
    probes: Path | None = Field(
        default=None,
        description="Drift probes: prompts whose good answers should not change (factual, refusal-appropriate, "
        "format-following), answered and judged every round; the per-probe change and the biggest movers are kept.",
    )
    spec: Path | None = Field(
        default=None,
        description="A model spec (configs/spec.yaml): the report and the probes break scores down per principle.",
    )
    cluster: ClusterConfig = Field(
        default_factory=ClusterConfig, description="Generate and judge on a Ray pool (training: train.ray)."
    )
    monitors: dict[str, Any] = Field(
        default_factory=dict,
        description="Alarm thresholds per monitor, e.g. {distinct_2: 0.3, tail_coverage: 0.2, judge_inflation: 0.1, "
        "length_ks: {above: 0.5}}; a number is a bound in the monitor's own bad direction. A crossed threshold stops "
        "the loop before the round's training step.",
    )

    @field_validator("monitors")
    @classmethod
    def _thresholds(cls, v: dict[str, Any]) -> dict[str, Any]:
        from rlaif._alarms import MonitorThresholds

        MonitorThresholds.from_mapping(v)  # unknown monitors and bad bounds fail here, naming them
        return v

    @field_validator("train")
    @classmethod
    def _train_section(cls, v: dict[str, Any]) -> dict[str, Any]:
        from rlaif._train_config import TrainConfig

        fixed = sorted({"model", "ref_model", "data", "output_dir"} & set(v))
        if fixed:
            raise ValueError(f"{fixed}: set by the loop every round (the previous checkpoint, the round's data); remove them")
        algo = v.get("algorithm", "dpo")
        if algo not in ("dpo", "kto"):
            raise ValueError(f"algorithm {algo!r}: the loop trains the policy with dpo or kto")
        TrainConfig.model_validate({**v, "algorithm": algo, "model": "-", "data": "-", "output_dir": "-"})
        return {**v, "algorithm": algo}

    @model_validator(mode="after")
    def _paths(self) -> "LoopConfig":
        if self.audit.store is None:
            self.audit.store = self.run_dir / "audit.sqlite"
        return self

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the run it continues (all but ``rounds`` and the gate's polling)."""
        return self.model_dump(mode="json", exclude={"rounds": True, "audit": {"poll_s"}})


def load_loop_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> LoopConfig:
    """Load a loop config file with dotted-key overrides; errors name file, line, field and value."""
    from judge.core._yaml import load_with_overrides

    return load_with_overrides(path, LoopConfig, ConfigError, "loop config", overrides)
