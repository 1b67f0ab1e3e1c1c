"""The records of candidate generation: one request, one generated text, the job's summary.

A :class:`GeneratedText` is one line of a candidates file. It carries its provenance (round,
policy model and fingerprint, sampling parameters with the seed actually used, ``synthetic``) and
is at the same time a pointwise item for the judge: ``judge.inputs.ItemReader`` reads its ``id``,
``prompt`` and ``response`` and keeps every other field (``prompt_id``, ``round``, ``policy`` ...)
in the item's ``meta``, so each judgment can be walked back to the candidate and its policy.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from judge.core._config import GenerationSamplingConfig
from judge.core._records import JudgeInfo, Message, SamplingParams
from judge.inputs._data import DatasetReport
from judge.runner._summary import ExecutorStats

__all__ = ["GenerateSummary", "GeneratedText", "GenerationRequest", "PolicyInfo"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyInfo(JudgeInfo):
    """Which policy wrote a candidate: the backend's report plus the identity its keys carry."""

    identity: str = Field(description="Backend, model fingerprint and dtype, hashed (part of every request key).")


class GenerationRequest(_Record):
    """One call to the policy: candidate ``candidate`` of prompt ``prompt_id``."""

    key: str = Field(description="Content address: hash of policy identity, round, messages and sampling (seed included).")
    item_id: str = Field(description="The candidate's id: '<prompt_id>-c<candidate>'.")
    prompt_id: str = Field(description="Id of the prompt (the prompts dataset's id, or one derived from its text).")
    candidate: int = Field(ge=0, description="Index of this candidate among the prompt's k.")
    prompt: str = Field(description="The user prompt.")
    system: str | None = Field(default=None, description="The system message, if the prompt has one.")
    messages: list[Message] = Field(description="What the policy is shown: system (if any) + user prompt.")
    sampling: SamplingParams = Field(description="Decoding parameters, with this candidate's own seed.")
    base_seed: int = Field(description="The configured seed the candidate's seed was derived from.")
    round: int = Field(ge=0, description="The RLAIF round.")
    prompt_meta: dict[str, Any] = Field(default_factory=dict, description="The prompt row's other columns.")


class GeneratedText(_Record):
    """One candidate response written by the policy. Append-only; a failed one is retried by the next run."""

    schema_version: int = 1
    key: str = Field(description="The request's content address (see GenerationRequest.key).")
    item_id: str = Field(description="The candidate's id, '<prompt_id>-c<candidate>' (the runner's slot).")
    id: str = Field(description="The same as item_id: the id the judge reads.")
    prompt_id: str = Field(description="The prompt this candidate answers (prefs groups candidates by it).")
    prompt: str = Field(description="The user prompt.")
    system: str | None = Field(default=None, description="The system message the policy was shown, if any.")
    response: str | None = Field(
        default=None, description="The generated text; None when the generation failed (not judgeable)."
    )
    candidate: int = Field(ge=0, description="Index of this candidate among the prompt's k.")
    round: int = Field(ge=0, description="The RLAIF round.")
    policy: PolicyInfo = Field(description="The model that wrote it: backend, model, fingerprint, identity.")
    sampling: SamplingParams = Field(description="Decoding parameters, with the seed actually used.")
    base_seed: int = Field(description="The configured seed the candidate's seed was derived from.")
    synthetic: Literal[True] = Field(default=True, description="Written by a model, not by a person.")
    status: Literal["generated", "failed"]
    error: str | None = Field(default=None, description="Why the generation failed.")
    error_kind: Literal["backend"] | None = Field(
        default=None, description="'backend' when the engine failed on this request (a rerun retries it)."
    )
    finish_reason: str | None = Field(default=None, description="'stop', 'length', or the engine's own reason.")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = Field(default=0.0, description="Wall time of the batch this request ran in, per request.")
    prompt_meta: dict[str, Any] = Field(default_factory=dict, description="The prompt row's other columns.")
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @model_validator(mode="after")
    def _status_fits(self) -> "GeneratedText":
        if self.id != self.item_id:
            raise ValueError(f"id {self.id!r} and item_id {self.item_id!r} must be the same")
        if self.status == "generated" and (self.response is None or self.error is not None):
            raise ValueError("a generated candidate has a response and no error")
        if self.status == "failed" and (self.response is not None or not self.error):
            raise ValueError("a failed candidate has no response and says why (error)")
        return self


class GenerateSummary(_Record):
    """What a generation job did: counts over the whole candidates file, and what this run added."""

    output: str = Field(description="The candidates file.")
    pairs_file: str | None = Field(default=None, description="The pairwise items file, when pairs were asked for.")
    rejects: str = Field(description="The rejects file (rows that failed validation, prompts too long).")
    round: int = Field(description="The RLAIF round.")
    k: int = Field(description="Candidates asked for per prompt.")
    rows: int = Field(default=0, description="Prompt rows read.")
    prompts: int = Field(default=0, description="Valid prompts.")
    rejected: int = Field(default=0, description="Prompt rows rejected by validation.")
    data: DatasetReport | None = Field(default=None, description="What reading the prompts found.")
    candidates: int = Field(default=0, description="Generated candidates in the output (every run's).")
    failed: int = Field(default=0, description="Failed candidates in the output (a rerun retries them).")
    new: int = Field(default=0, description="Candidates this run asked the policy for.")
    resumed: int = Field(default=0, description="Candidates an earlier run of this job had written.")
    cached: int = Field(default=0, description="Candidates taken from the cache.")
    skipped: int = Field(default=0, description="Requests not sent: the prompt does not fit the policy's context.")
    pairs: int = Field(default=0, description="Pairwise items written (every pair of a prompt's candidates).")
    new_prompt_tokens: int = Field(default=0, description="Prompt tokens this run sent.")
    new_completion_tokens: int = Field(default=0, description="Tokens generated in this run.")
    completion_tokens: int = Field(default=0, description="Generated tokens of every candidate in the output.")
    wall_s: float = Field(default=0.0, description="Wall time of this run.")
    generate_s: float = Field(default=0.0, description="Time this run spent in the policy.")
    policy: PolicyInfo | None = Field(default=None, description="The policy (from the output when nothing ran).")
    sampling: GenerationSamplingConfig = Field(description="The configured decoding settings (base seed).")
    executor: ExecutorStats | None = Field(default=None, description="Ray pool statistics, if the job ran on one.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def candidates_per_s(self) -> float:
        """This run's new candidates per second in the policy."""
        return round(self.new / self.generate_s, 3) if self.generate_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (what ``<stem>.summary.json`` holds)."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def table(self) -> str:
        """A short human-readable report."""
        s = self.sampling
        lines = [
            f"candidates  {self.output}   (round {self.round}, k {self.k})",
            f"  prompts {self.prompts}   rejected rows {self.rejected}   candidates {self.candidates} "
            f"(new {self.new}, resumed {self.resumed}, from cache {self.cached})   failed {self.failed}",
        ]
        if self.policy is not None:
            p = self.policy
            lines.append(f"  policy {p.backend} {p.model}   fingerprint {p.model_hash[:12]}   {p.backend_version}")
        lines.append(
            f"  sampling temperature {s.temperature:g}, top_p {s.top_p:g}, max_tokens {s.max_tokens}, "
            f"seed {s.seed} (one derived seed per candidate, recorded)"
        )
        lines.append(
            f"  tokens this run: prompt {self.new_prompt_tokens}, generated {self.new_completion_tokens}   "
            f"wall {self.wall_s:.1f}s   policy {self.generate_s:.1f}s   {self.candidates_per_s:.2f} candidates/s"
        )
        if self.skipped or self.failed:
            lines.append(
                f"  skipped {self.skipped} (prompt too long for the policy's context; see {self.rejects})   "
                f"failed {self.failed} (not judgeable; a rerun retries them)"
            )
        if self.data is not None:
            lines.extend(self.data.lines())
        ex = self.executor
        if ex is not None and ex.workers:
            lines.append(
                f"  ray workers {len(ex.workers)}   retries {ex.retries}   failures {ex.failures}   "
                f"start-up {ex.startup_s:.1f}s   "
                + "   ".join(f"{w.name} {w.judgments} on {w.node or '?'}" for w in ex.workers)
            )
        if self.pairs_file is not None:
            lines.append(f"  pairs {self.pairs}   {self.pairs_file}")
        return "\n".join(lines)
