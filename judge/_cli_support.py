"""What the command line needs around a job: signals, a clean stdout, and a backend switch.

- :func:`stop_on_signals`: SIGTERM and SIGINT become :class:`Stopped` (a ``SystemExit``), so every
  ``finally`` runs and the backend shuts its engine down. Python's default SIGTERM handling kills
  the interpreter without unwinding, and vLLM's ``EngineCore`` child then outlives its parent.
- :func:`stdout_to_stderr`: while a ``--json`` job runs, file descriptor 1 points at stderr, so
  nothing (a library's print, a log line, a child process's output) can land before the JSON.
- :func:`switch_backend`, :func:`load_cli_config`: ``--backend hf`` on a config written for vllm
  keeps only the options the new backend takes, and says which it dropped.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["Stopped", "load_cli_config", "stdout_to_stderr", "stop_on_signals", "switch_backend"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(SystemExit):
    """The process got SIGTERM or SIGINT; exits with status 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`Stopped` while the block runs (main thread only).

    The first signal raises; further ones are ignored while the shutdown runs, so a second
    SIGTERM from an impatient supervisor cannot cut the engine's shutdown short (SIGKILL still can).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        for s in _SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    for s in _SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextmanager
def stdout_to_stderr(enabled: bool = True) -> Iterator[None]:
    """Send everything written to stdout during the block to stderr, at the file-descriptor level.

    Child processes started inside the block inherit the redirected descriptor too. Where stdout
    has no descriptor (a test runner's buffer), only ``sys.stdout`` is redirected.
    """
    if not enabled:
        yield
        return
    stream = sys.stdout
    stream.flush()
    try:
        fd = stream.fileno()
        err_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    saved = None
    if fd is not None:
        saved = os.dup(fd)
        os.dup2(err_fd, fd)
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = stream
        if saved is not None:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, fd)
                os.close(saved)


def switch_backend(current: str, options: dict[str, Any], new: str) -> tuple[dict[str, Any], list[str]]:
    """The options to keep when a job's backend changes from ``current`` to ``new``.

    Options the new backend takes (``dtype``, ``max_model_len``...) are kept; the others were
    written for ``current`` and are dropped.

    Returns:
        The options kept, and the sorted names of those dropped.

    Raises:
        ConfigError: ``new`` is not a registered backend.
    """
    import inspect

    from judge.backends._base import _REGISTRY, backend_names
    from judge.core._errors import ConfigError

    if new == current:
        return dict(options), []
    names = backend_names()  # registers the built-in backends
    if new not in names:
        raise ConfigError(f"unknown backend {new!r}; available: {', '.join(names)}")
    # The same rule create_backend applies: a factory's named parameters, or anything with **kwargs.
    params = inspect.signature(_REGISTRY[new]).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    kept = {k: v for k, v in options.items() if takes_any or (k in params and k != "self")}
    dropped = [k for k in options if k not in kept]
    return kept, sorted(dropped)


def load_cli_config(config_path: str | None, overrides: dict[str, Any]) -> Any:
    """The job config from the file and the flags, a ``--backend`` switch dropping the old backend's options.

    The dropped option names are said in one line on stderr.
    """
    from judge.core._load import load_job_config

    backend = overrides.get("judge.backend")
    if backend is not None and config_path is not None:
        before = load_job_config(config_path, {**overrides, "judge.backend": None})
        kept, dropped = switch_backend(before.judge.backend, dict(before.judge.options), backend)
        if dropped:
            print(
                f"note: --backend {backend}: ignoring the config's {before.judge.backend} option(s) "
                f"{', '.join(dropped)}, which {backend} does not take",
                file=sys.stderr,
            )
            overrides = {**overrides, "judge.options": kept}
    return load_job_config(config_path, overrides)
