"""The resumable batch runner (generic over tasks), the judging job on it, its cache, ledger and reports."""

from judge.runner._cache import FAILED, JudgmentCache, OutputLedger, line_slot, output_slot
from judge.runner._engine import JobPaths, job_judge, job_judge_id, job_paths, run_job
from judge.runner._jury import run_jury
from judge.runner._runner import Rejects, RunCounts, Runner, compact, failed_line, progress_bar
from judge.runner._summary import (
    CriterionStat,
    ExecutorStats,
    JobSummary,
    PairsSummary,
    RubricSummary,
    WorkerStats,
)
from judge.runner._task import BatchResult, Executor, JudgeTask, LocalExecutor, Request, Task

__all__ = [
    "FAILED",
    "BatchResult",
    "CriterionStat",
    "Executor",
    "ExecutorStats",
    "JobPaths",
    "JobSummary",
    "JudgeTask",
    "JudgmentCache",
    "LocalExecutor",
    "OutputLedger",
    "PairsSummary",
    "Rejects",
    "Request",
    "RubricSummary",
    "RunCounts",
    "Runner",
    "Task",
    "WorkerStats",
    "compact",
    "failed_line",
    "job_judge",
    "job_judge_id",
    "job_paths",
    "line_slot",
    "output_slot",
    "progress_bar",
    "run_job",
    "run_jury",
]
