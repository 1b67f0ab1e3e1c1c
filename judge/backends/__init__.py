"""Inference backends: one protocol, several engines, registered by name.

>>> from judge.backends import create_backend
>>> backend = create_backend("vllm", model="/path/to/model")   # doctest: +SKIP
"""

from judge.backends._base import (
    Backend,
    Completion,
    Prompt,
    TokenLogprob,
    backend_names,
    create_backend,
    register_backend,
)
from judge.backends._scripted import ScriptedBackend

__all__ = [
    "Backend",
    "Completion",
    "Prompt",
    "ScriptedBackend",
    "TokenLogprob",
    "backend_names",
    "create_backend",
    "register_backend",
]
