"""Exceptions raised by judgeloop.

One hierarchy, so callers can catch everything with ``JudgeloopError``::

    JudgeloopError
    ├── RubricError      a rubric file is malformed (file, line, field, allowed, given)
    ├── ConfigError      a job config or a command-line option is invalid
    ├── DataError        an input dataset cannot be read at all (bad rows are rejects, not errors)
    ├── BackendError     an inference backend failed to load or to answer
    │   └── MissingDependencyError  an optional package is not installed
    └── ClusterError     Ray could not provide the requested workers

The CLI prints any ``JudgeloopError`` as one message without a traceback and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ClusterError",
    "ConfigError",
    "DataError",
    "JudgeloopError",
    "MissingDependencyError",
    "RubricError",
]


class JudgeloopError(Exception):
    """Base class of every error judgeloop raises on purpose."""


class RubricError(JudgeloopError):
    """A rubric is invalid; the message names the file, line, field and values."""


class ConfigError(JudgeloopError):
    """A job configuration or option is invalid."""


class DataError(JudgeloopError):
    """An input dataset cannot be read."""


class BackendError(JudgeloopError):
    """An inference backend failed."""


class MissingDependencyError(BackendError):
    """An optional dependency is missing; the message says what to install."""


class ClusterError(JudgeloopError):
    """The Ray cluster cannot run the requested workers."""
