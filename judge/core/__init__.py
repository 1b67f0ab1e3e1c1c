"""The bottom layer: errors, the typed records that cross a file or process boundary, configs."""

from judge.core._config import (
    ClusterConfig,
    JobConfig,
    JudgeConfig,
    JuryConfig,
    JuryMember,
    SamplingConfig,
    ScoringConfig,
    load_job_config,
)
from judge.core._errors import (
    BackendError,
    ClusterError,
    ConfigError,
    DataError,
    JudgeloopError,
    MissingDependencyError,
    RubricError,
)
from judge.core._records import (
    Item,
    JudgeInfo,
    JudgeRequest,
    Judgment,
    Message,
    RubricRef,
    SamplingParams,
    stable_hash,
)

__all__ = [
    "BackendError",
    "ClusterConfig",
    "ClusterError",
    "ConfigError",
    "DataError",
    "Item",
    "JobConfig",
    "JudgeConfig",
    "JudgeInfo",
    "JudgeRequest",
    "JudgeloopError",
    "Judgment",
    "JuryConfig",
    "JuryMember",
    "Message",
    "MissingDependencyError",
    "RubricError",
    "RubricRef",
    "SamplingConfig",
    "SamplingParams",
    "ScoringConfig",
    "load_job_config",
    "stable_hash",
]
