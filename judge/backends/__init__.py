"""Inference backends: one protocol, several engines, registered by name.

>>> from judge.backends import create_backend
>>> backend = create_backend("vllm", model="/path/to/model")   # doctest: +SKIP
"""

from judge.backends._base import (
    Backend,
    Completion,
    Prompt,
    TokenLogprob,
    backend_identity,
    backend_names,
    check_backend,
    create_backend,
    generate_each,
    identity_of,
    register_backend,
)
from judge.backends._scripted import ScriptedBackend

__all__ = [
    "Backend",
    "Completion",
    "Prompt",
    "ScriptedBackend",
    "TokenLogprob",
    "backend_identity",
    "backend_names",
    "check_backend",
    "create_backend",
    "generate_each",
    "identity_of",
    "register_backend",
]
