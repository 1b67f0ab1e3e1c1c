"""The typed records that cross a process or file boundary.

Every record is a pydantic model with ``extra="forbid"`` and a ``schema_version``, serialised as one
JSON object per line. A judgment carries everything needed to trace it back: rubric id, version and
hash, judge model and its fingerprint, backend, sampling parameters, prompt hash and raw output.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Item",
    "JudgeInfo",
    "JudgeRequest",
    "JudgeTrace",
    "Judgment",
    "JuryVerdict",
    "Message",
    "PairVerdict",
    "RubricRef",
    "SamplingParams",
    "stable_hash",
    "texts_hash",
]


def stable_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (sorted keys, no whitespace)."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Record):
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


class Item(_Record):
    """One row of a dataset to judge. Texts are untrusted data."""

    id: str = Field(default="", description="Stable id; derived from the content when absent.")
    prompt: str = Field(description="The user prompt the response(s) answer.")
    response: str | None = Field(default=None, description="The response to score (pointwise, reference).")
    response_a: str | None = Field(default=None, description="First response of a pair (pairwise).")
    response_b: str | None = Field(default=None, description="Second response of a pair (pairwise).")
    reference: str | None = Field(default=None, description="Reference answer (reference mode).")
    meta: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form metadata, carried through. A dataset reader also keeps here every column "
        "of the row that is not a field (source, annotator, generator...); see judge.inputs.ItemReader.",
    )

    @field_validator("id", mode="before")
    @classmethod
    def _integer_id_as_text(cls, v: Any) -> Any:
        # Many datasets number their rows; an integer id is the same id written as text.
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v

    def texts_hash(self) -> str:
        """Hash of the judged texts (prompt, responses, reference): what makes two rows the same item."""
        return stable_hash([self.prompt, self.response, self.response_a, self.response_b, self.reference])

    @model_validator(mode="after")
    def _derive_id(self) -> "Item":
        if not self.id:
            self.id = "item-" + self.texts_hash()[:16]
        return self


class SamplingParams(_Record):
    """Decoding parameters, recorded with every judgment. Greedy by default."""

    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 = greedy (the default for judging).")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass, in (0, 1].")
    max_tokens: int = Field(default=256, ge=1, le=32768, description="Maximum generated tokens.")
    seed: int = Field(default=0, description="Sampling seed (matters only when temperature > 0).")
    logprobs: int | None = Field(default=None, ge=0, le=20, description="Top-k logprobs per generated token.")
    json_schema: dict[str, Any] | None = Field(default=None, description="Constrain output to this JSON schema.")
    choices: list[str] | None = Field(default=None, description="Constrain output to one of these strings.")
    stop: list[str] | None = Field(default=None, description="Stop strings.")

    @model_validator(mode="after")
    def _one_constraint(self) -> "SamplingParams":
        if self.json_schema is not None and self.choices is not None:
            raise ValueError("json_schema and choices are mutually exclusive")
        return self


class RubricRef(_Record):
    """Which rubric produced a judgment."""

    id: str
    version: int
    hash: str


class JudgeInfo(_Record):
    """Which judge produced a judgment."""

    model: str = Field(description="Model name or path as configured.")
    model_hash: str = Field(description="Fingerprint of the model's weights and tokenizer files.")
    backend: str = Field(description="Backend name (vllm, hf, openai, scripted).")
    backend_version: str = Field(default="", description="Version of the inference library.")
    dtype: str = Field(default="", description="Compute dtype.")


def texts_hash(item: "Item") -> str:
    """Hash of the texts of ``item`` a judge is shown (prompt, responses, reference)."""
    return item.texts_hash()


class JudgeTrace(_Record):
    """What is needed, with the item and the rubric, to rebuild exactly the messages a judge saw."""

    sanitize: bool = Field(description="Whether verdict-shaped fragments in the texts were defused.")
    texts_hash: str = Field(description="Hash of the item's texts as given (see texts_hash()).")
    prefill: str | None = Field(default=None, description="The start of the judge's answer, if prefilled.")
    prompt_version: int = Field(description="Version of the prompt template (judge.inputs PROMPT_VERSION).")
    truncation: dict[str, int] = Field(
        default_factory=dict,
        description="Field -> tokens cut from its middle to fit the context (judge.truncation: middle); "
        "texts_hash is then of the cut texts, which are what the judge saw.",
    )


class JudgeRequest(_Record):
    """One call to the judge: a rendered prompt plus how to decode it."""

    key: str = Field(description="Content address: hash of rubric hash, judge, sampling and prompt.")
    item_id: str
    rubric: RubricRef
    kind: Literal["pointwise", "pairwise", "reference"]
    order: Literal["AB", "BA"] | None = Field(default=None, description="Pairwise: which response was shown first.")
    messages: list[Message]
    prompt_hash: str
    sampling: SamplingParams
    trace: JudgeTrace | None = Field(default=None, description="How the messages were rendered.")


class Judgment(_Record):
    """The outcome of one judge request. Append-only; never edited in place."""

    schema_version: int = 1
    key: str = Field(description="The request's content address (see JudgeRequest.key).")
    item_id: str
    rubric: RubricRef
    judge: JudgeInfo
    sampling: SamplingParams
    prompt_hash: str
    kind: Literal["pointwise", "pairwise", "reference"]
    order: Literal["AB", "BA"] | None = None
    status: Literal["scored", "unscored"]
    scores: dict[str, int] | None = Field(default=None, description="Score per criterion (pointwise/reference).")
    overall: float | None = Field(default=None, description="Weighted mean of normalised scores, in [0, 1].")
    winner: Literal["A", "B", "tie"] | None = Field(
        default=None, description="Pairwise verdict in terms of the *item's* response_a/response_b."
    )
    rationale: str | None = None
    raw_output: str = Field(description="The judge's text, exactly as generated.")
    error: str | None = Field(default=None, description="Why the output could not be scored.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Scorer-specific details (distributions...).")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = Field(default=0.0, description="Wall time of the batch this request ran in, per request.")
    trace: JudgeTrace | None = Field(
        default=None, description="How the judge's messages were rendered (None in files older than traces)."
    )
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @model_validator(mode="after")
    def _unscored_has_no_numbers(self) -> "Judgment":
        if self.status == "unscored" and (self.scores is not None or self.overall is not None or self.winner):
            raise ValueError("an unscored judgment carries no scores or verdict")
        if self.status == "unscored" and not self.error:
            raise ValueError("an unscored judgment must say why (error)")
        return self


class PairVerdict(_Record):
    """The verdict on one pair by one judge and rubric, from its judgments in one or both orders."""

    schema_version: int = 1
    item_id: str
    rubric: RubricRef
    judge: JudgeInfo
    policy: Literal["strict", "average-probability"] = Field(description="How the orders were combined.")
    tie_threshold: float | None = Field(default=None, description="average-probability: the tie band.")
    order_seed: int = Field(description="Seed of the order assignment (single-order jobs draw one per item).")
    orders: list[Literal["AB", "BA"]] = Field(description="The orders judged, as assigned.")
    verdicts: dict[str, Literal["A", "B", "tie"] | None] = Field(
        description="Per order, the judge's verdict in the item's terms; None when that order is unscored."
    )
    p_a: dict[str, float | None] = Field(
        description="Per order, P(the item's response A wins), ties counting half; None when unscored."
    )
    p_a_mean: float | None = Field(default=None, description="Mean of p_a over the scored orders.")
    p_source: Literal["logprobs", "verdicts"] | None = Field(
        default=None, description="logprobs: read from the verdict tokens; verdicts: 1 / 0.5 / 0 from the text."
    )
    consistent: bool | None = Field(
        default=None, description="Both orders scored and gave the same verdict; None with fewer than two."
    )
    winner: Literal["A", "B", "tie", "inconsistent"] | None = Field(
        default=None, description="The final verdict in the item's terms; None when unscored."
    )
    status: Literal["scored", "unscored"]
    error: str | None = None
    raw_outputs: dict[str, str] = Field(default_factory=dict, description="Per order, the judge's text.")
    judgment_keys: dict[str, str] = Field(default_factory=dict, description="Per order, the judgment's key.")


class JuryVerdict(_Record):
    """One item's verdict from a jury."""

    schema_version: int = 1
    item_id: str
    kind: Literal["pairwise", "score"]
    aggregate: Literal["majority", "mean", "weighted"]
    votes: dict[str, str | None] = Field(
        default_factory=dict, description="Pairs: each member's final verdict (None = unscored)."
    )
    values: dict[str, float | None] = Field(
        default_factory=dict, description="Each member's P(A wins) (pairs) or overall score in [0, 1]."
    )
    weights: dict[str, float] = Field(default_factory=dict, description="The weights used.")
    keys: dict[str, list[str]] = Field(
        default_factory=dict, description="Each member's judgment keys for this item (both orders for pairs)."
    )
    winner: Literal["A", "B", "tie"] | None = Field(default=None, description="Pairs: the jury's verdict.")
    value: float | None = Field(default=None, description="Aggregated P(A wins) or overall score.")
    agreement: float | None = Field(default=None, description="Share of (weighted) votes for the verdict.")
    status: Literal["scored", "unscored"]
    error: str | None = None
