"""Typed records of human oversight: audit samples, human labels, overrides.

These cross a process boundary (the SQLite audit store, JSONL/CSV exports, the review UI), so each is
a pydantic model with ``extra="forbid"`` and a description per field. Judged texts inside them are
untrusted data: whoever renders them escapes them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judge.core._records import Item, Message, RubricRef, stable_hash

__all__ = [
    "STRATA",
    "AuditSample",
    "HumanLabel",
    "JudgeOutput",
    "Override",
    "RISK_STRATA",
    "SamplingRun",
    "sample_id_for",
    "scope_key",
]

Stratum = Literal[
    "uniform",
    "swap_inconsistent",
    "split_jury",
    "low_margin",
    "high_entropy",
    "unscored",
    "extreme_score",
    "injection_flag",
    "coverage",
    "handpicked",
]
#: Every stratum name, in the order reports list them.
STRATA: tuple[str, ...] = (
    "uniform",
    "coverage",
    "injection_flag",
    "unscored",
    "swap_inconsistent",
    "split_jury",
    "low_margin",
    "high_entropy",
    "extreme_score",
    "handpicked",
)
#: Risk strata, highest priority first: a judgment with several risk flags belongs to the first.
RISK_STRATA: tuple[str, ...] = (
    "injection_flag",
    "unscored",
    "swap_inconsistent",
    "split_jury",
    "low_margin",
    "high_entropy",
    "extreme_score",
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def sample_id_for(judgment_key: str, item_id: str, run_id: str) -> str:
    """The stable id of a sample: a hash of its judgment key, item id and sampling run."""
    return "s-" + stable_hash([judgment_key, item_id, run_id])[:20]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JudgeOutput(_Record):
    """What the judge decided, as recorded by its judgment(s). Hidden from a reviewer until they label."""

    status: Literal["scored", "unscored"] = Field(description="Whether the judge's output could be read.")
    scores: dict[str, int] | None = Field(default=None, description="Pointwise/reference: score per criterion.")
    overall: float | None = Field(default=None, description="Pointwise/reference: weighted normalised score in [0, 1].")
    winner: Literal["A", "B", "tie", "inconsistent"] | None = Field(
        default=None, description="Pairwise: the final verdict in the item's terms (both orders combined)."
    )
    p_a: float | None = Field(default=None, description="Pairwise: P(the item's response A wins), mean over orders.")
    rationale: str | None = Field(default=None, description="The judge's rationale, if the rubric asked for one.")
    error: str | None = Field(default=None, description="Unscored: why the output could not be read.")
    raw_output: str = Field(default="", description="The judge's text (first order for a pair), exactly as generated.")


class AuditSample(_Record):
    """One judge decision drawn for human review, with everything needed to review and to weight it."""

    schema_version: int = Field(default=1, description="Record format version.")
    sample_id: str = Field(description="Stable id: hash of judgment key, item id and sampling run.")
    run_id: str = Field(description="The sampling run that drew this sample.")
    judgment_key: str = Field(description="Key of the judgment reviewed (the AB order's for a pair).")
    judgment_keys: list[str] = Field(default_factory=list, description="Every judgment behind the decision (both orders of a pair).")
    item_id: str = Field(description="The judged item's id.")
    rubric: RubricRef = Field(description="The rubric the judge applied.")
    rubric_def: dict[str, Any] | None = Field(
        default=None, description="The rubric itself (criteria with level descriptions) for the reviewer; None if unavailable."
    )
    kind: Literal["pointwise", "pairwise", "reference"] = Field(description="The rubric's mode.")
    stratum: Stratum = Field(description="The design stratum the sample was drawn from.")
    cell: str = Field(default="", description="The design cell drawn from (see SamplingRun.cells); empty for hand-picked samples.")
    flags: list[str] = Field(default_factory=list, description="Every risk flag the decision carries (its stratum is the first).")
    inclusion_prob: float | None = Field(
        default=None, gt=0.0, le=1.0, description="P(drawn) under the sampling design; None for hand-picked samples."
    )
    population: int = Field(default=0, ge=0, description="Decisions in the population this sample's run drew from.")
    judge_input: list[Message] = Field(
        default_factory=list, description="The exact messages the judge saw (first order for a pair); empty if unavailable."
    )
    judge_input_exact: bool = Field(
        default=False, description="True when the messages were rebuilt and their hash matches the judgment's prompt hash."
    )
    item: Item | None = Field(default=None, description="The judged item (prompt, response(s)); None if the dataset was not given.")
    judge_output: JudgeOutput = Field(description="The judge's decision; hidden from reviewers until they commit a label.")
    judge_fingerprint: str = Field(description="The judge model's fingerprint (JudgeInfo.model_hash).")
    rubric_hash: str = Field(description="The rubric's content hash.")
    prompt_version: str = Field(description="Fingerprint of the prompt template the judge was asked with (see sampling docs).")
    seed: int = Field(description="Seed of the sampling run.")
    created_at: str = Field(default_factory=_now, description="When the sample was drawn (UTC, ISO 8601).")

    @model_validator(mode="after")
    def _probability_matches_stratum(self) -> "AuditSample":
        if (self.stratum == "handpicked") != (self.inclusion_prob is None):
            raise ValueError("inclusion_prob must be None exactly for hand-picked samples")
        return self

    @property
    def scope(self) -> tuple[str, str, str]:
        """(judge fingerprint, rubric hash, prompt version): what a gate decision is valid for."""
        return (self.judge_fingerprint, self.rubric_hash, self.prompt_version)


class HumanLabel(_Record):
    """One row of a reviewer's history on a sample. Never edited: a change or an undo is a new row."""

    schema_version: int = Field(default=1, description="Record format version.")
    label_id: str = Field(default="", description="Unique id; derived from the content when empty.")
    sample_id: str = Field(description="The sample labelled.")
    reviewer: str = Field(min_length=1, description="Who labelled.")
    phase: Literal["before_reveal", "after_reveal"] = Field(
        description="before_reveal: committed before the judge's verdict was shown (the only phase estimates use)."
    )
    value: str | dict[str, int] | None = Field(
        default=None,
        description='Pairwise: "a", "b" or "tie" in the item\'s terms (a = the item\'s response_a, whatever position it '
        "was shown in); pointwise: {criterion: score}. None for a skip or an undo.",
    )
    shown_order: Literal["AB", "BA"] | None = Field(
        default=None, description="Pairwise: the order this reviewer saw the responses in (randomised per reviewer)."
    )
    order_seed: int | None = Field(default=None, description="Seed that drew shown_order.")
    note: str | None = Field(default=None, description="The reviewer's free-text note.")
    skipped: bool = Field(default=False, description="The reviewer skipped the sample.")
    undoes: str | None = Field(default=None, description="An undo row: the label_id it retracts.")
    source: str = Field(default="web", description="Where the label came from: web, import, label-studio...")
    created_at: str = Field(default_factory=_now, description="When the row was written (UTC, ISO 8601).")

    @model_validator(mode="after")
    def _shape(self) -> "HumanLabel":
        if isinstance(self.value, str) and self.value not in ("a", "b", "tie"):
            raise ValueError(f'a pairwise value must be "a", "b" or "tie", got {self.value!r}')
        if self.undoes is None and not self.skipped and self.value is None:
            raise ValueError("a label needs a value unless it is a skip or an undo")
        if (self.skipped or self.undoes is not None) and self.value is not None:
            raise ValueError("a skip or an undo carries no value")
        if not self.label_id:
            self.label_id = "l-" + stable_hash(
                [self.sample_id, self.reviewer, self.phase, self.value, self.skipped, self.undoes, self.created_at]
            )[:24]
        return self


class Override(_Record):
    """A recorded human decision to let a failing gate pass. Never silent: every report shows it."""

    schema_version: int = Field(default=1, description="Record format version.")
    reviewer: str = Field(min_length=1, description="Who overrode.")
    reason: str = Field(min_length=1, description="Why.")
    scope: str = Field(description="What it applies to: gate name + judge fingerprint + rubric hash + prompt version.")
    created_at: str = Field(default_factory=_now, description="When (UTC, ISO 8601).")


class SamplingRun(_Record):
    """The design of one sampling run: what the estimates need about the whole population.

    ``cells`` maps each design cell to ``{"stratum", "N", "n", "inclusion_prob", "scopes"}``, where
    ``scopes`` maps a scope key (``fingerprint|rubric hash|prompt version``) to that scope's share
    of the cell: ``{"N", "f_sum", "f_sumsq"}``, the sums of the judge's proxy value over every
    decision (overall score, or P(A wins) for pairs; 0.5 when unscored), for prediction-powered
    estimates.
    """

    schema_version: int = Field(default=1, description="Record format version.")
    run_id: str = Field(description="The sampling run.")
    seed: int = Field(description="Seed of the draw.")
    config: dict[str, Any] = Field(description="The sampling configuration used.")
    population: int = Field(ge=0, description="Decisions in the population.")
    cells: dict[str, dict[str, Any]] = Field(description="Per design cell: stratum, N, n, inclusion probability, per-scope sums.")
    source: str = Field(default="", description="The judgments file sampled.")
    created_at: str = Field(default_factory=_now, description="When (UTC, ISO 8601).")


def scope_key(judge_fingerprint: str, rubric_hash: str, prompt_version: str) -> str:
    """The key of a gate scope: judge fingerprint, rubric hash and prompt version."""
    return f"{judge_fingerprint}|{rubric_hash}|{prompt_version}"
