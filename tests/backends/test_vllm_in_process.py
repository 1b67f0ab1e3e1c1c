"""On CPU the vLLM engine runs in the judging process; engines beside each other close one by one.

An RLAIF round holds the judge's engine while it starts and closes a policy engine for generation.
vLLM's in-process shutdown tears down the process-wide model-parallel state that every in-process
engine uses, so closing the policy's engine must leave the judge's working.
"""

from __future__ import annotations

import os

import pytest

from judge.backends import create_backend
from judge.backends._vllm import _on_cpu
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
    other = create_backend("vllm", model=model_dir, max_model_len=512, enforce_eager=True, kv_cache_gib=1)
    assert other.in_process
    # The mode is set only while vLLM builds the engine: child processes do not inherit it.
    assert os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == env
    assert other.generate([PROMPT], GREEDY)[0].error is None
    other.close()
    after = vllm_backend.generate([PROMPT], GREEDY)[0]
    assert before.error is None and after.error is None, after.error
    assert after.completion_tokens == 4 and after.text
