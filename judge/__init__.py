"""judgeloop's judge: rubrics, prompts, backends, scoring and the batch engine.

Importing ``judge`` is fast: vLLM, transformers and Ray are imported only by the code that uses them.
"""

from judge._errors import (
    BackendError,
    ClusterError,
    ConfigError,
    DataError,
    JudgeloopError,
    MissingDependencyError,
    RubricError,
)
from judge.config import JobConfig, JudgeConfig, SamplingConfig, load_job_config
from judge.engine import JobSummary, run_job
from judge.records import Item, JudgeInfo, JudgeRequest, Judgment, Message, RubricRef, SamplingParams
from judge.rubric import Criterion, FewShotExample, Rubric, list_rubrics, load_rubric, resolve_rubric

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "ClusterError",
    "ConfigError",
    "Criterion",
    "DataError",
    "FewShotExample",
    "Item",
    "JobConfig",
    "JobSummary",
    "JudgeConfig",
    "JudgeInfo",
    "JudgeRequest",
    "JudgeloopError",
    "Judgment",
    "Message",
    "MissingDependencyError",
    "Rubric",
    "RubricError",
    "RubricRef",
    "SamplingConfig",
    "SamplingParams",
    "list_rubrics",
    "load_job_config",
    "load_rubric",
    "resolve_rubric",
    "run_job",
]
