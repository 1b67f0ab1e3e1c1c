"""The eval report as typed records: what ``report.json`` holds and ``--json`` prints.

Per-judge metrics stay plain JSON objects (their keys differ between pairwise and pointwise sets;
see :mod:`judge.eval._metrics`); everything around them is typed here. ``to_json`` leaves out
the sections a run did not have, so the file keeps the format README describes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BootstrapSettings", "EvalReport", "EvalTiming", "JuryAgreement", "RejectedRow"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RejectedRow(_Record):
    """A labelled row that was skipped."""

    line: int = Field(description="1-based line (or row) of the labelled set.")
    error: str = Field(description="What is wrong with it.")


class BootstrapSettings(_Record):
    """How the 95% intervals were drawn."""

    reps: int = Field(ge=0, description="Bootstrap resamples per statistic (0: no intervals).")
    seed: int = Field(description="Seed of the resampling (the job's sampling seed).")
    level: float = Field(gt=0, lt=1, description="Coverage of the intervals.")


class EvalTiming(_Record):
    """How long the judge took (single-judge runs)."""

    judge_s: float = Field(ge=0, description="Seconds spent judging.")
    new_judgments: int = Field(ge=0, description="Judgments made in this run (the rest came from the cache or a resume).")
    judgments_per_s: float = Field(ge=0, description="new_judgments / judge_s.")


class JuryAgreement(_Record):
    """The jury's own summary (jury runs)."""

    alpha: dict[str, Any] = Field(description="Krippendorff's alpha between members, by level.")
    aggregate: str = Field(description="How member verdicts were combined.")
    members: dict[str, Any] = Field(description="Per member: rubric, judge, output, counts, weight.")


class EvalReport(_Record):
    """A judge configuration measured against a human-labelled set."""

    data: str = Field(description="The labelled set.")
    data_sha256: str = Field(description="SHA-256 of the labelled set's bytes.")
    kind: Literal["pairwise", "pointwise"] = Field(description="Format of the labelled set.")
    rows: int = Field(ge=0, description="Valid labelled rows.")
    rejected: list[RejectedRow] = Field(description="Rows skipped, with their line and error.")
    dataset: dict[str, Any] | None = Field(
        default=None, description="What reading the set found: rows, rejects, repeats, extra columns (DatasetReport)."
    )
    output_dir: str = Field(description="Where items, judgments, rejects.jsonl and this report are.")
    scoring: dict[str, Any] = Field(description="The scoring section of the judge configuration.")
    pairwise_orders: str = Field(description="Orders each pair was judged in (AB, both, random).")
    bootstrap: BootstrapSettings = Field(description="How the 95% intervals were drawn.")
    judge: dict[str, Any] | None = Field(default=None, description="Identity of the judge (single-judge runs).")
    timing: EvalTiming | None = Field(default=None, description="Judging time (single-judge runs).")
    judges: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Metrics per rubric, or of the aggregated jury under 'jury'."
    )
    members: dict[str, dict[str, Any]] | None = Field(default=None, description="Metrics per jury member.")
    jury: JuryAgreement | None = Field(default=None, description="The jury's agreement between members.")
    calibration: dict[str, Any] | None = Field(
        default=None, description="Fitted tie band and jury weights (--calibrate), and where they were saved."
    )
    wall_s: float = Field(default=0.0, ge=0, description="Seconds for the whole eval.")

    def to_json(self) -> dict[str, Any]:
        """The report as ``report.json`` holds it (sections a run did not have are left out)."""
        return self.model_dump(mode="json", exclude_none=True)
