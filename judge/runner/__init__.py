"""The resumable batch runner: requests, cache and output ledger, the end-of-job step."""

from judge.runner._cache import (
    JudgmentCache,
    OutputLedger,
    line_slot,
    output_slot,
)
from judge.runner._engine import (
    BatchResult,
    Executor,
    JobSummary,
    LocalExecutor,
    job_judge_id,
    job_paths,
    run_job,
)

__all__ = [
    "BatchResult",
    "Executor",
    "JobSummary",
    "JudgmentCache",
    "LocalExecutor",
    "OutputLedger",
    "job_judge_id",
    "job_paths",
    "line_slot",
    "output_slot",
    "run_job",
]
