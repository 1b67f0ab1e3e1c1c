"""The backend protocol and registry.

A backend turns chat prompts into completions. It knows nothing of rubrics: the engine renders
rubric + item into messages, and reads scores from what comes back.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from judge.core._errors import BackendError, ConfigError, MissingDependencyError
from judge.core._records import JudgeInfo, Message, SamplingParams

Prompt = list[Message]


class TokenLogprob(BaseModel):
    """One generated token with its logprob and the top-k alternatives at that position."""

    model_config = ConfigDict(extra="forbid")

    token: str
    logprob: float
    top: dict[str, float] = Field(default_factory=dict, description="Decoded token -> logprob, top-k.")


class Completion(BaseModel):
    """What a backend returns for one prompt."""

    model_config = ConfigDict(extra="forbid")

    text: str
    tokens: list[TokenLogprob] | None = Field(default=None, description="Per-token logprobs when requested.")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


@runtime_checkable
class Backend(Protocol):
    """The one interface every inference engine implements."""

    name: str

    def info(self) -> JudgeInfo:
        """Which model this is, precisely enough to reproduce a judgment."""
        ...

    def generate(self, prompts: list[Prompt], params: SamplingParams | list[SamplingParams]) -> list[Completion]:
        """Complete every prompt; results are in the same order as ``prompts``.

        If the last message of a prompt is from the assistant, the completion continues it.
        """
        ...

    def close(self) -> None:
        """Release the engine's memory and worker processes."""
        ...


_REGISTRY: dict[str, Callable[..., Backend]] = {}


def register_backend(name: str) -> Callable[[Callable[..., Backend]], Callable[..., Backend]]:
    """Class decorator: make a backend available by name in configs and on the CLI."""

    def deco(factory: Callable[..., Backend]) -> Callable[..., Backend]:
        _REGISTRY[name] = factory
        return factory

    return deco


def _import_builtin() -> None:
    # Importing these modules only registers classes; each imports its engine lazily.
    from judge.backends import _hf, _openai, _scripted, _vllm  # noqa: F401


def backend_names() -> list[str]:
    """Names of the registered backends."""
    _import_builtin()
    return sorted(_REGISTRY)


def create_backend(name: str, **options: Any) -> Backend:
    """Instantiate a registered backend, checking option names before any model loads."""
    _import_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown backend {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    factory = _REGISTRY[name]
    params = inspect.signature(factory).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            allowed = ", ".join(p for p in params if p != "self")
            raise ConfigError(f"backend {name!r} has no option(s) {unknown}; allowed: {allowed}")
    return factory(**options)


def require(module: str, install: str) -> Any:
    """Import an optional dependency or explain how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"this backend needs {module!r}: pip install {install} ({exc})") from None


def fingerprint_model_dir(path: str | Path) -> str:
    """Hash of a local model directory: every file's path, size and whole content.

    Each file's digest is remembered by path, size and modification time, so a large model is
    read once, not on every job (see :mod:`judge.backends._fingerprint`).
    """
    from judge.backends._fingerprint import fingerprint_dir

    return fingerprint_dir(path)


def as_param_list(params: SamplingParams | list[SamplingParams], n: int) -> list[SamplingParams]:
    """Broadcast one parameter set to ``n`` prompts, or check a list has ``n`` entries."""
    if isinstance(params, SamplingParams):
        return [params] * n
    if len(params) != n:
        raise ValueError(f"got {len(params)} sampling params for {n} prompts")
    return list(params)


def split_prefill(prompt: Prompt) -> tuple[list[dict[str, str]], str | None]:
    """Messages as dicts, and the assistant prefill text when the prompt ends with one."""
    msgs = [m.model_dump() for m in prompt]
    if msgs and msgs[-1]["role"] == "assistant":
        return msgs, msgs[-1]["content"]
    return msgs, None
