"""On CPU the vLLM engine runs in the judging process; engines beside each other close one by one.

An RLAIF round holds the judge's engine while it starts and closes a policy engine for generation.
vLLM's in-process shutdown tears down the process-wide model-parallel state that every in-process
engine uses, so closing the policy's engine must leave the judge's working.
"""

from __future__ import annotations

import os

import pytest

from judge.backends import create_backend
from judge.backends._vllm import _CLEANUP, _on_cpu
from judge.core._records import Message, SamplingParams

pytestmark = [pytest.mark.model, pytest.mark.vllm]

PROMPT = [Message(role="user", content="Name a colour of the sea.")]
GREEDY = SamplingParams(max_tokens=4, logprobs=1)


def test_closing_one_in_process_engine_leaves_the_other_judging(vllm_backend, model_dir):
    assert vllm_backend.in_process == _on_cpu()  # the platform's default
    if not vllm_backend.in_process:
        pytest.skip("engines run in their own processes on this platform")
    before = vllm_backend.generate([PROMPT], GREEDY)[0]
    env = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    other = create_backend("vllm", model=model_dir, max_model_len=512, kv_cache_gib=1)
    assert other.in_process
    # Eager is the CPU default too (engine start ~6 s against ~49 s compiled), and it reaches vLLM.
    assert other.enforce_eager and other.llm.llm_engine.vllm_config.model_config.enforce_eager
    # The mode is set only while vLLM builds the engine: child processes do not inherit it.
    assert os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == env
    assert other.generate([PROMPT], GREEDY)[0].error is None
    other.close()
    after = vllm_backend.generate([PROMPT], GREEDY)[0]
    assert before.error is None and after.error is None, after.error
    assert after.completion_tokens == 4 and after.text


def test_the_vllm_teardown_the_close_guard_holds_back_still_exists():
    # Without it, closing one of two in-process engines leaves it to garbage collection (with a
    # warning) instead of shutting it down; an upgrade of vLLM that renames it must show here.
    import vllm.v1.engine.core as engine_core

    assert callable(getattr(engine_core, _CLEANUP, None)), f"vllm.v1.engine.core.{_CLEANUP} is gone"
    assert _CLEANUP in engine_core.EngineCore.shutdown.__code__.co_names


class _Core:
    """Stands in for vLLM's in-process client: records what the global teardown was at shutdown."""

    def __init__(self, engine_core):
        self.engine_core, self.seen = engine_core, []

    def shutdown(self):
        self.seen.append(getattr(self.engine_core, _CLEANUP, None))


class _Backend:
    in_process = True


def test_only_the_last_in_process_engine_runs_the_global_teardown(monkeypatch):
    import vllm.v1.engine.core as engine_core

    from judge.backends import _vllm

    real = getattr(engine_core, _CLEANUP)
    first, second = _Backend(), _Backend()
    monkeypatch.setattr(_vllm, "_in_process_engines", {id(first), id(second)})
    core = _Core(engine_core)
    _vllm._shutdown(first, core)  # another engine is alive: the teardown is held back
    assert core.seen and core.seen[0] is not real
    assert getattr(engine_core, _CLEANUP) is real  # and put back afterwards
    _vllm._shutdown(second, core)  # the last one
    assert core.seen[1] is real

    monkeypatch.setattr(_vllm, "_in_process_engines", {id(first), id(second)})
    monkeypatch.delattr(engine_core, _CLEANUP)
    core = _Core(engine_core)
    with pytest.warns(RuntimeWarning, match="left to garbage collection"):
        _vllm._shutdown(first, core)
    assert core.seen == []  # not shut down: that could tear down the state the other engine uses
