"""Job configuration: the pydantic models a YAML config is validated against.

Loading a file, with its command-line overrides, is ``judge.core._load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from judge.core._records import Item

__all__ = [
    "COLUMN_TARGETS",
    "ClusterConfig",
    "GENERATE_COLUMNS",
    "GenerateConfig",
    "GenerationSamplingConfig",
    "JobAudit",
    "JobConfig",
    "JudgeConfig",
    "JudgeSpec",
    "JuryConfig",
    "JuryMember",
    "ModelConfig",
    "SamplingConfig",
    "ScoringConfig",
    "label_text",
]


# The names `columns` may map: an item's fields, and the label fields of `judgeloop eval`.
COLUMN_TARGETS = tuple(n for n in Item.model_fields) + ("label", "human_score", "scale")


def label_text(value: Any) -> str:
    """A label value as text, as `labels` keys are matched (1 and 1.0 are "1"; true is "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Cfg):
    """A model on a backend: what a judge or a policy runs on."""

    backend: str = Field(default="vllm", description="Inference backend: vllm, hf, openai (or a registered name).")
    model: str = Field(
        default="bundled",
        description="Local model directory, or 'bundled' for the prepared SmolLM2-135M-Instruct. "
        "For the openai backend: the served model name.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Backend options, e.g. dtype, max_model_len, enforce_eager, tensor_parallel_size "
        "(vllm); batch_size (hf); base_url, concurrency (openai).",
    )


class JudgeConfig(ModelConfig):
    """Which model judges, on which backend."""

    truncation: Literal["none", "middle"] = Field(
        default="none",
        description="An item too long for the judge's context: none = a reject with its reason (tokens "
        "needed, tokens available); middle = its judged texts (response(s), reference; the longest first) "
        "lose their middle to a visible marker until it fits, recorded in the judgment's extra.truncation. "
        "middle needs a local model directory (its tokenizer).",
    )


class SamplingConfig(_Cfg):
    """Decoding settings for the judge. Greedy by default, so judgments are reproducible."""

    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 = greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus mass, in (0, 1].")
    max_tokens: int = Field(default=256, ge=1, le=32768, description="Most tokens the judge may generate.")
    seed: int = Field(default=0, description="Seed for sampling and every random choice of the job.")


class ClusterConfig(_Cfg):
    """Where the job runs: in-process (default) or on a Ray pool of judge actors."""

    enabled: bool = Field(default=False, description="Run on Ray actors instead of in this process.")
    address: str | None = Field(
        default=None,
        description="None starts a private local Ray; 'auto' or 'ray://host:port' joins a running cluster.",
    )
    workers: int = Field(default=1, ge=1, description="Number of judge actors.")
    num_cpus: float = Field(default=1.0, ge=0, description="CPUs reserved per actor.")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs per actor (tensor_parallel_size is separate).")
    max_in_flight: int = Field(default=2, ge=1, description="Batches queued per actor (backpressure).")
    max_restarts: int = Field(default=2, ge=0, description="Times a dead actor is restarted.")
    max_attempts: int = Field(
        default=4, ge=1, description="Times one batch may be tried (on any worker) before the job fails."
    )
    startup_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="Seconds to wait for the workers' resources and for each worker's backend to load "
        "(at start and after a restart) before failing with a ClusterError.",
    )


def check_columns(v: dict[str, str], fields: tuple[str, ...]) -> dict[str, str]:
    """A ``columns`` mapping: known field names, each mapped to a non-empty column name."""
    unknown = sorted(set(v) - set(fields))
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} in columns; the fields are {list(fields)}")
    empty = sorted(k for k, col in v.items() if not col)
    if empty:
        raise ValueError(f"columns: field(s) {empty} map to an empty column name")
    return v


#: The names a generation job's `columns` may map.
GENERATE_COLUMNS = ("id", "prompt", "system")


class GenerationSamplingConfig(_Cfg):
    """Decoding settings for a policy writing candidates: sampled (temperature > 0), seeded, recorded."""

    temperature: float = Field(
        default=0.8, ge=0.0, le=2.0, description="Sampling temperature; 0 (greedy) only with k: 1."
    )
    top_p: float = Field(default=0.95, gt=0.0, le=1.0, description="Nucleus mass, in (0, 1].")
    max_tokens: int = Field(default=256, ge=1, le=32768, description="Most tokens one candidate may have.")
    seed: int = Field(
        default=0,
        ge=0,
        description="Base seed. Candidate i of prompt p is sampled with a seed derived from (seed, p, i), "
        "recorded with the candidate: the same config writes the same texts, and k candidates differ.",
    )


class GenerateConfig(_Cfg):
    """Candidate generation: a policy model writes ``k`` sampled responses to every prompt.

    A round config carries it as its ``generate:`` section beside the judging settings, so one file
    serves ``judgeloop generate`` (prompts -> candidates) and ``judgeloop judge`` (candidates ->
    judgments): the judge's ``data`` is where the candidates go.
    """

    data: Path = Field(
        description="Prompts dataset: JSONL, JSON, CSV, Parquet or a datasets directory, one prompt per row "
        "with a 'prompt' column and optionally 'id' and 'system'. Other columns are kept with each "
        "candidate (prompt_meta)."
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Field name -> the dataset's column for it, e.g. {prompt: instruction}. Fields: "
        + ", ".join(GENERATE_COLUMNS)
        + ".",
    )
    output: Path | None = Field(
        default=None,
        description="Candidates file (JSONL), directly judgeable as a pointwise dataset. None: the round "
        "config's `data` (what `judgeloop judge` reads). Rejects, summary and cache are written beside it.",
    )
    policy: ModelConfig = Field(
        default_factory=ModelConfig, description="The policy model that writes the candidates, on which backend."
    )
    k: int = Field(default=4, ge=1, le=1024, description="Candidates per prompt.")
    sampling: GenerationSamplingConfig = Field(
        default_factory=GenerationSamplingConfig, description="Decoding settings (sampled, seeded)."
    )
    round: int = Field(default=0, ge=0, description="The RLAIF round these candidates belong to (recorded).")
    batch_size: int = Field(default=64, ge=1, description="Requests sent to the backend at once.")
    limit: int | None = Field(default=None, ge=1, description="Generate for the first N valid prompts only.")
    pairs: bool = Field(
        default=False,
        description="Also write <stem>.pairs.jsonl: every pair of one prompt's generated candidates as a "
        "pairwise item (response_a / response_b), for judging with a pairwise rubric.",
    )

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, v: dict[str, str]) -> dict[str, str]:
        return check_columns(v, GENERATE_COLUMNS)

    @model_validator(mode="after")
    def _sampled_when_several(self) -> "GenerateConfig":
        if self.k > 1 and self.sampling.temperature == 0:
            raise ValueError(
                f"@sampling.temperature: 0 is greedy decoding, which makes the k={self.k} candidates of a "
                "prompt identical (no preference can be drawn between them); set a temperature > 0 "
                "(e.g. 0.8) or k: 1"
            )
        return self


class ScoringConfig(_Cfg):
    """How verdicts are read from the judge, and how the two orders of a pair become one verdict."""

    method: Literal["auto", "logprob", "json"] = Field(
        default="auto",
        description="logprob: the judge's answer is prefilled up to the verdict, which is one constrained "
        "token per criterion; the score is the probability-weighted mean over the scale's tokens (G-Eval). "
        "json: the judge writes a JSON object; the score is what it wrote. auto: logprob wherever every "
        "level of the rubric's scale is a distinct single token for the judge's tokenizer, else json.",
    )
    top_logprobs: int = Field(default=20, ge=1, le=20, description="Top-k logprobs read at each verdict token.")
    pairwise_policy: Literal["strict", "average-probability"] = Field(
        default="strict",
        description="strict: a winner only when both orders agree (A vs B is 'inconsistent', a win vs a tie "
        "is 'tie'). average-probability: P(A wins) averaged over the orders; within tie_threshold of 0.5 "
        "is a tie.",
    )
    tie_threshold: float = Field(
        default=0.05,
        ge=0.0,
        le=0.5,
        description="average-probability: |P(A wins) - 0.5| at or below this is a tie (calibrate it with "
        "`judgeloop eval --calibrate`).",
    )
    sanitize: bool = Field(
        default=True,
        description="Defuse verdict-shaped fragments, fake data boundaries and chat markup inside judged "
        "texts before the judge sees them.",
    )
    calibration: dict[str, Any] | None = Field(
        default=None,
        description="Where calibrated values came from (labelled set, its hash, metric, date); written by "
        "`judgeloop eval --calibrate`.",
    )


class JuryMember(_Cfg):
    """One judge of a jury: a model, a rubric or a scoring variant."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,47}$", description="Member name (lowercase slug).")
    judge: JudgeConfig | None = Field(default=None, description="The member's model; None = the job's judge.")
    rubric: str | None = Field(default=None, description="Rubric id or path; None = the job's only rubric.")
    scoring: ScoringConfig | None = Field(default=None, description="Scoring settings; None = the job's.")
    weight: float = Field(default=1.0, ge=0.0, description="Vote weight for aggregate: weighted (calibrated).")


class JuryConfig(_Cfg):
    """Several judges on the same items, aggregated into one verdict per item."""

    members: list[JuryMember] = Field(min_length=2, description="The judges (at least two).")
    aggregate: Literal["majority", "mean", "weighted"] = Field(
        default="majority",
        description="majority: most common verdict (ties between verdicts are reported, never broken "
        "silently); mean: mean score / mean P(A wins); weighted: the same with each member's weight.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> "JuryConfig":
        names = [m.name for m in self.members]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"jury member names must be unique, repeated: {dupes}")
        return self


class JudgeSpec(_Cfg):
    """A judge: model and backend, rubrics, scoring and sampling. No data, no output."""

    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="Which model judges, on which backend.")
    rubrics: list[str] = Field(
        default_factory=lambda: ["helpfulness"], min_length=1, description="Rubric ids or paths."
    )
    scoring: ScoringConfig = Field(default_factory=ScoringConfig, description="How verdicts are read.")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig, description="Decoding settings.")
    pairwise_orders: Literal["AB", "both", "random"] = Field(
        default="both",
        description="Pairwise rubrics: both (A,B) and (B,A); AB only; or one order per item drawn with "
        "sampling.seed (recorded with each judgment).",
    )


class JobAudit(_Cfg):
    """Oversight of a judging job: its audit sample, drawn as it finishes, and its canary re-score."""

    store: Path | None = Field(
        default=None, description="Audit store (SQLite). None: audit.sqlite beside the job's output."
    )
    budget: float | None = Field(
        default=None,
        gt=0,
        description="Decisions to sample for human review when the job ends: a count (50) or a share (0.05). "
        "None draws no sample (`judgeloop audit sample` can, later).",
    )
    seed: int = Field(default=0, description="Seed of the draw (recorded with every sample).")
    uniform_share: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Share of the budget for the rubrics' rest cells (the rest: risk strata)."
    )
    canary: Path | None = Field(
        default=None,
        description="A frozen human-labelled anchor set (the `judgeloop eval` format) re-scored by every job with "
        "the same judge (cached), and compared with the last accepted run's report: judge drift is flagged.",
    )
    canary_accepted: Path | None = Field(
        default=None,
        description="The last accepted canary report. None: <store>.canary-accepted.json, which a passing "
        "`judgeloop audit gate --canary-report` (or the RLAIF loop's gate) replaces.",
    )

    def store_for(self, output: Path) -> Path:
        """The store of a job writing ``output``."""
        return self.store if self.store is not None else Path(output).parent / "audit.sqlite"

    def accepted_for(self, output: Path) -> Path:
        """The accepted canary report of a job writing ``output``."""
        if self.canary_accepted is not None:
            return self.canary_accepted
        return Path(str(self.store_for(output)) + ".canary-accepted.json")


class JobConfig(JudgeSpec):
    """A batch judging job: a judge (see :class:`JudgeSpec`) plus data, output and runner settings."""

    data: Path = Field(
        description="Input dataset: JSONL (one item per line), a JSON array, CSV, Parquet, or a directory "
        "written by datasets' save_to_disk. Columns that are not fields are kept in each item's meta."
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Field name -> the dataset's column for it, e.g. {prompt: instruction, response: "
        "output}. Fields: " + ", ".join(COLUMN_TARGETS) + " (label, human_score and scale are read by "
        "`judgeloop eval`). A row without a mapped column is a reject; unmapped columns go to meta.",
    )
    labels: dict[str, Literal["a", "b", "tie"]] = Field(
        default_factory=dict,
        description="`judgeloop eval`, pairwise: the labelled set's label value -> a, b or tie, e.g. "
        "{model_a: a, model_b: b, tie: tie, 'tie (bothbad)': tie}. Values not listed must be a, b or tie.",
    )
    output: Path = Field(description="Judgments file (JSONL). Rejects and summary are written beside it.")
    batch_size: int = Field(default=64, ge=1, description="Requests sent to the backend at once.")
    limit: int | None = Field(default=None, ge=1, description="Judge only the first N valid items.")
    jury: JuryConfig | None = Field(default=None, description="Judge with several judges and aggregate.")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="Where the job runs.")
    generate: GenerateConfig | None = Field(
        default=None,
        description="Candidate generation for `judgeloop generate` (an RLAIF round); judging ignores it.",
    )
    audit: JobAudit | None = Field(
        default=None, description="Draw the job's audit sample as it ends (audit.budget); re-score a canary set."
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Directory of a judgment cache shared by jobs (judgments.sqlite in it). None keeps "
        "the cache beside the output (<stem>.cache.sqlite). A request whose judgment is cached is "
        "never sent to the judge again.",
    )

    @field_validator("columns")
    @classmethod
    def _known_targets(cls, v: dict[str, str]) -> dict[str, str]:
        return check_columns(v, COLUMN_TARGETS)

    @field_validator("labels", mode="before")
    @classmethod
    def _label_keys_as_text(cls, v: Any) -> Any:
        # YAML reads `1: a` with an integer key; a label read from a file is matched as text.
        if isinstance(v, dict):
            return {label_text(k): x for k, x in v.items()}
        return v

    def judge_spec(self) -> JudgeSpec:
        """The judge of this job, without its data, output and runner settings."""
        return JudgeSpec.model_validate(self.model_dump(include=set(JudgeSpec.model_fields)))
