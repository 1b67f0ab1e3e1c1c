"""The backend protocol and registry.

A backend turns chat prompts into completions. It knows nothing of rubrics: the engine renders
rubric + item into messages, and reads scores from what comes back.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judge.core._errors import ConfigError, MissingDependencyError
from judge.core._records import JudgeInfo, Message, SamplingParams

Prompt = list[Message]


class TokenLogprob(BaseModel):
    """One generated token with its logprob and the top-k alternatives at that position."""

    model_config = ConfigDict(extra="forbid")

    token: str
    logprob: float
    top: dict[str, float] = Field(default_factory=dict, description="Decoded token -> logprob, top-k.")


#: Why a backend could not complete one request: the prompt does not fit the context
#: (``too_long``, decided before anything is sent), or the engine or server failed on it (``backend``).
ErrorKind = Literal["too_long", "backend"]


class Completion(BaseModel):
    """What a backend returns for one prompt.

    A request that failed on its own (the rest of the batch ran) has ``error`` and ``error_kind``
    set and ``text`` empty; it never raises, so one long item cannot fail a batch.
    """

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The generated text (the continuation only, after any prefill).")
    tokens: list[TokenLogprob] | None = Field(default=None, description="Per-token logprobs when requested.")
    prompt_tokens: int = Field(default=0, ge=0, description="Tokens of the rendered prompt, prefill included.")
    completion_tokens: int = Field(default=0, ge=0, description="Tokens generated.")
    finish_reason: str | None = Field(default=None, description="'stop', 'length', or the engine's own reason.")
    error: str | None = Field(
        default=None,
        description="Why this request failed, e.g. 'needs 4334 prompt tokens + 48 generated, context is 4096'; "
        "None when it succeeded.",
    )
    error_kind: ErrorKind | None = Field(
        default=None,
        description="'too_long': the prompt cannot fit the context and was not sent; 'backend': the engine or "
        "server failed on this request. None when it succeeded.",
    )

    @property
    def ok(self) -> bool:
        """True when the request succeeded."""
        return self.error_kind is None

    @model_validator(mode="after")
    def _error_pairs(self) -> "Completion":
        if (self.error is None) != (self.error_kind is None):
            raise ValueError("error and error_kind are set together (both or neither)")
        return self


def too_long_message(prompt_tokens: int, max_tokens: int, context: int) -> str:
    """The reason recorded for a prompt that does not fit: tokens needed and tokens available."""
    return f"needs {prompt_tokens} prompt tokens + {max_tokens} generated, context is {context}"


def too_long(prompt_tokens: int, max_tokens: int, context: int) -> Completion:
    """The completion of a request refused before sending because it cannot fit the context."""
    return Completion(
        text="",
        prompt_tokens=prompt_tokens,
        error=too_long_message(prompt_tokens, max_tokens, context),
        error_kind="too_long",
    )


def failed(exc: BaseException | str) -> Completion:
    """The completion of a request the engine or server failed on (the rest of its batch ran)."""
    msg = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return Completion(text="", error=str(msg)[:2000], error_kind="backend")


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


def check_backend(name: str, options: dict[str, Any]) -> Callable[..., Backend]:
    """The registered factory of backend ``name``, after checking its option names (loads nothing).

    Raises:
        ConfigError: an unknown backend, or options the backend does not take.
    """
    _import_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown backend {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    factory = _REGISTRY[name]
    params = inspect.signature(factory).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params) - {"model"})
        if unknown:
            allowed = ", ".join(p for p in params if p != "self")
            raise ConfigError(f"backend {name!r} has no option(s) {unknown}; allowed: {allowed}")
    return factory


def create_backend(name: str, **options: Any) -> Backend:
    """Instantiate a registered backend, checking option names before any model loads."""
    return check_backend(name, options)(**options)


def identity_hash(backend: str, model_hash: str, dtype: str = "") -> str:
    """The judge identity that request keys carry: backend, model fingerprint and compute dtype."""
    from judge.core._records import stable_hash

    return stable_hash([backend, model_hash, dtype])


def backend_identity(name: str, model: str, options: dict[str, Any]) -> str:
    """The identity of backend ``name`` serving ``model`` with ``options``, without loading it.

    The backend class says it (a ``identity(model, **options)`` classmethod); a ready backend
    reports the same value through :func:`identity_of`, so a judge built from a config and one
    built around a loaded backend share cache entries and resume each other's jobs.
    """
    factory = check_backend(name, options)
    ident = getattr(factory, "identity", None)
    if ident is not None:
        return ident(model, **options)
    # A third-party backend that does not say: its name, model and options.
    from judge.core._records import stable_hash

    return identity_hash(name, stable_hash([model, options]))


def identity_of(backend: Backend) -> str:
    """The identity of a ready backend: the one :func:`backend_identity` gives for its settings.

    Backends that know how they were created expose ``identity_args`` (model and the options that
    matter); otherwise the identity comes from :meth:`Backend.info`.
    """
    args = getattr(backend, "identity_args", None)
    ident = getattr(type(backend), "identity", None)
    if args is not None and ident is not None:
        return ident(**args)
    info = backend.info()
    return identity_hash(info.backend, info.model_hash, info.dtype)


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


def generate_each(backend: Backend, prompts: list[Prompt], params: list[SamplingParams]) -> list[Completion]:
    """``backend.generate``, with one request's failure kept to that request.

    A backend that raises for a whole batch is asked again one request at a time, so only the
    requests that fail themselves fail: each becomes a completion with ``error_kind: backend``.
    A missing dependency or a config error is not a per-request failure and still raises.
    """
    try:
        return backend.generate(prompts, params)
    except (ConfigError, MissingDependencyError):
        raise
    except Exception as exc:
        if len(prompts) == 1:
            return [_failed(type(exc).__name__, str(exc))]
    out: list[Completion] = []
    for prompt, p in zip(prompts, params):
        try:
            out.extend(backend.generate([prompt], [p]))
        except (ConfigError, MissingDependencyError):
            raise
        except Exception as exc:
            out.append(_failed(type(exc).__name__, str(exc)))
    return out


def _failed(kind: str, message: str) -> Completion:
    return Completion(text="", error=f"{kind}: {message}"[:2000], error_kind="backend", finish_reason="error")
