"""Typed reports of a job: what it did, per rubric and per worker; printed as a table, written as JSON."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from judge.core._records import JudgeInfo
from judge.inputs._data import DatasetReport

__all__ = ["CanaryRun", "CriterionStat", "ExecutorStats", "JobSample", "JobSummary", "PairsSummary", "RubricSummary", "WorkerStats"]


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CriterionStat(_Report):
    """The mean of one criterion over the scored judgments."""

    mean: float = Field(description="Mean score (or logprob-weighted expected score).")
    n: int = Field(description="Judgments the mean is over.")


class PairsSummary(_Report):
    """The pair verdicts of a pairwise rubric (both orders combined by the policy)."""

    n: int = Field(description="Pair verdicts written.")
    policy: str = Field(description="How the two orders were combined.")
    tie_threshold: float | None = Field(default=None, description="average-probability: the tie band.")
    winners: dict[str, int] = Field(default_factory=dict, description="Final verdict -> pairs.")
    file: str = Field(description="The pair verdicts file.")


class RubricSummary(_Report):
    """One rubric's judgments in the output."""

    mode: str = Field(description="pointwise, pairwise or reference.")
    scored: int = Field(default=0, description="Scored judgments.")
    unscored: int = Field(default=0, description="Judgments whose verdict could not be read.")
    criteria: dict[str, CriterionStat] = Field(default_factory=dict, description="Mean score per criterion.")
    winners: dict[str, int] = Field(default_factory=dict, description="Pairwise: per-order verdict counts.")
    expected: dict[str, CriterionStat] | None = Field(
        default=None, description="Logprob scoring: mean expected score per criterion."
    )
    pairs: PairsSummary | None = Field(default=None, description="Pairwise: the combined verdicts.")
    bias: dict[str, Any] = Field(
        default_factory=dict, description="Bias diagnostics (position, length, self-preference)."
    )


class WorkerStats(_Report):
    """One worker of a parallel executor (a Ray pool)."""

    name: str = Field(description="Worker name (w0, w1 ...).")
    node: str = Field(default="", description="The node it ran on.")
    cores: list[int] = Field(default_factory=list, description="Cores it was bound to.")
    batches: int = Field(default=0, description="Batches it completed.")
    judgments: int = Field(default=0, description="Requests it completed.")
    busy_s: float = Field(default=0.0, description="Seconds its backend spent on batches.")
    judgments_per_s: float = Field(default=0.0, description="Requests per busy second.")
    prompt_tokens_per_s: float = Field(default=0.0, description="Prompt tokens per busy second.")
    completion_tokens_per_s: float = Field(default=0.0, description="Generated tokens per busy second.")
    failures: int = Field(default=0, description="Batches lost on it.")
    restarts: int = Field(default=0, description="Times it was restarted.")
    load_s: float = Field(default=0.0, description="Seconds its backend took to load.")
    alive: bool = Field(default=True, description="Alive at the end of the job.")


class ExecutorStats(_Report):
    """Where the batches ran, when not simply in this process."""

    executor: str = Field(description="Executor kind (ray).")
    address: str | None = Field(default=None, description="The cluster address.")
    workers: list[WorkerStats] = Field(default_factory=list, description="Per-worker statistics.")
    retries: int = Field(default=0, description="Batches sent again after a failure.")
    failures: int = Field(default=0, description="Batch attempts that failed.")
    max_queue_depth: int = Field(default=0, description="Most batches in flight at once.")
    startup_s: float = Field(default=0.0, description="Seconds until the workers were ready.")
    judge_wall_s: float = Field(default=0.0, description="Wall time of the judging, all workers together.")
    worker_s: float = Field(default=0.0, description="judge_wall_s times the number of workers.")
    worker_s_per_1k: float = Field(default=0.0, description="Worker-seconds per 1000 requests.")
    busy_worker_s_per_1k: float = Field(default=0.0, description="Busy worker-seconds per 1000 requests.")
    gpu_s_per_1k: float | None = Field(default=None, description="GPU-seconds per 1000 requests (GPU pools).")


class JobSample(BaseModel):
    """The audit sample a job drew."""

    model_config = ConfigDict(extra="forbid")

    store: str = Field(description="The audit store the samples went to.")
    run_id: str = Field(description="The sampling run.")
    samples: int = Field(description="Samples drawn.")
    new: int = Field(description="Samples not already in the store.")
    population: int = Field(description="Decisions sampled from.")


class CanaryRun(BaseModel):
    """A job's re-score of its canary set, and its comparison with the last accepted one."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="The canary set.")
    report: str = Field(description="This job's eval report on it (pass it to `audit gate --canary-report`).")
    accepted: str | None = Field(description="The accepted report compared with; None when there is none yet.")
    check: dict[str, Any] | None = Field(description="The comparison (a CanaryCheck); None without an accepted report.")
    flagged: bool = Field(description="Agreement dropped by more than chance allows.")
    detail: str = Field(description="Readable statement.")


class JobSummary(_Report):
    """What a job did: counts over the whole output, and what this run added to it."""

    output: str = Field(description="The judgments file.")
    rows: int = Field(default=0, description="Dataset rows read.")
    items: int = Field(default=0, description="Valid items.")
    rejected: int = Field(default=0, description="Rows rejected by validation (see the rejects file).")
    data: DatasetReport | None = Field(
        default=None, description="What reading the dataset found: extra columns kept in meta, repeated rows."
    )
    skipped: int = Field(
        default=0, description="Requests not judged because the prompt does not fit the judge's context."
    )
    failed: int = Field(
        default=0, description="Requests the backend failed on (unscored, not cached: a rerun retries them)."
    )
    judgments: int = Field(default=0, description="Judgments in the output (this run's and earlier runs').")
    new_judgments: int = Field(default=0, description="Judgments this run asked the judge for.")
    resumed: int = Field(default=0, description="Judgments an earlier run of this job had written.")
    cached: int = Field(default=0, description="Judgments taken from the cache (or a same-text item).")
    unscored: int = Field(default=0, description="Judgments in the output whose verdict could not be read.")
    prompt_tokens: int = Field(default=0, description="Prompt tokens of every judgment in the output.")
    completion_tokens: int = Field(default=0, description="Generated tokens of every judgment in the output.")
    new_prompt_tokens: int = Field(default=0, description="Prompt tokens this run sent.")
    new_completion_tokens: int = Field(default=0, description="Tokens generated in this run.")
    wall_s: float = Field(default=0.0, description="Wall time of this run.")
    judge_s: float = Field(default=0.0, description="Time this run spent in the judge.")
    rubrics: dict[str, RubricSummary] = Field(default_factory=dict, description="Per rubric id.")
    judge: JudgeInfo | None = Field(default=None, description="The judge (from the output when nothing ran).")
    executor: ExecutorStats | None = Field(default=None, description="Parallel executor statistics, if any.")
    audit_sample: JobSample | None = Field(default=None, description="The audit sample drawn as the job ended (audit.budget).")
    canary: CanaryRun | None = Field(default=None, description="The canary set's re-score (audit.canary).")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def judgments_per_s(self) -> float:
        """This run's new judgments per second of judging."""
        return round(self.new_judgments / self.judge_s, 3) if self.judge_s > 0 else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def prompt_tokens_per_s(self) -> float:
        """This run's prompt tokens per second of judging."""
        return round(self.new_prompt_tokens / self.judge_s, 1) if self.judge_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (what ``<stem>.summary.json`` holds)."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def table(self) -> str:
        from judge.analysis._verdicts import summary_lines

        lines = [
            f"judgments  {self.output}",
            f"  items {self.items}   rejected rows {self.rejected}   judgments {self.judgments} "
            f"(new {self.new_judgments}, resumed {self.resumed}, from cache {self.cached})   "
            f"unscored {self.unscored}",
            f"  tokens: prompt {self.prompt_tokens}, generated {self.completion_tokens}   "
            f"wall {self.wall_s:.1f}s   judge {self.judge_s:.1f}s   {self.judgments_per_s:.2f} judgments/s",
        ]
        if self.skipped or self.failed:
            lines.append(
                f"  skipped {self.skipped} (too long for the judge's context; see the rejects file)   "
                f"backend failures {self.failed} (unscored; a rerun retries them)"
            )
        if self.data is not None:
            lines.extend(self.data.lines())
        lines.extend(_executor_lines(self.executor))
        if self.audit_sample is not None:
            a = self.audit_sample
            lines.append(f"  audit sample {a.run_id}: {a.samples} of {a.population} decisions ({a.new} new) -> {a.store}")
        if self.canary is not None:
            lines.append(f"  canary {'FLAGGED' if self.canary.flagged else 'ok'}: {self.canary.detail} ({self.canary.report})")
        for rid, r in self.rubrics.items():
            lines.append(f"  rubric {rid}  ({r.mode}; scored {r.scored}, unscored {r.unscored})")
            if r.criteria:
                width = max(len(c) for c in r.criteria)
                lines.append(f"    {'criterion'.ljust(width)}   mean    n")
                for c, stats in r.criteria.items():
                    lines.append(f"    {c.ljust(width)}   {stats.mean:5.2f}  {stats.n:4d}")
            if r.winners:
                lines.append("    verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(r.winners.items())))
            lines.extend(summary_lines(r.model_dump(mode="json")))
        return "\n".join(lines)


def _executor_lines(ex: ExecutorStats | None) -> list[str]:
    """Per-worker lines for a summary whose executor reported workers (e.g. a Ray pool)."""
    if ex is None or not ex.workers:
        return []
    lines = [
        f"  workers {len(ex.workers)}   retries {ex.retries}   failures {ex.failures}   "
        f"max queue depth {ex.max_queue_depth}   start-up {ex.startup_s:.1f}s   "
        f"cost {ex.worker_s_per_1k:.1f} worker-s per 1k judgments",
        f"    {'worker':<10} {'node':<16} {'batches':>7} {'judgments':>9} {'busy s':>7} {'judg/s':>7} "
        f"{'prompt tok/s':>12} {'gen tok/s':>9} {'restarts':>8} {'failures':>8}",
    ]
    for w in ex.workers:
        lines.append(
            f"    {w.name:<10} {w.node:<16} {w.batches:>7} {w.judgments:>9} "
            f"{w.busy_s:>7.1f} {w.judgments_per_s:>7.2f} {w.prompt_tokens_per_s:>12.0f} "
            f"{w.completion_tokens_per_s:>9.0f} {w.restarts:>8} {w.failures:>8}"
        )
    return lines
