"""One long item never fails its batch: the local backends on the real bundled model.

Both backends run with a 1,024-token context so that a judge prompt is easily made too long. One
engine of each kind for the module (vLLM: eager, ~30 s to start), shut down at teardown.
"""

from __future__ import annotations

import pytest

from judge.backends import create_backend
from judge.backends._chat import render_chat_ids
from judge.core._records import Item, Message, SamplingParams
from judge.inputs._prompts import render_messages
from judge.inputs._rubric import resolve_rubric

pytestmark = [pytest.mark.model, pytest.mark.vllm]

CONTEXT = 1024
HELP = resolve_rubric("helpfulness")


@pytest.fixture(scope="module")
def vllm_small(model_dir):
    be = create_backend("vllm", model=model_dir, max_model_len=CONTEXT, enforce_eager=True, kv_cache_gib=1)
    yield be
    be.close()


@pytest.fixture(scope="module")
def hf_small(model_dir):
    be = create_backend("hf", model=model_dir, max_model_len=CONTEXT, batch_size=4)
    yield be
    be.close()


@pytest.fixture(params=["vllm", "hf"])
def backend(request):
    return request.getfixturevalue(f"{request.param}_small")


def judge_prompt(response: str) -> list[Message]:
    return render_messages(HELP, Item(id="x", prompt="Describe the sea.", response=response), sanitize=True)


SHORT = judge_prompt("The sea is large, salty and always moving.")
LONG = judge_prompt(" ".join(f"wave{i}" for i in range(1500)))
PREFILLED = [Message(role="user", content="Count from one to ten in words."),
             Message(role="assistant", content="one, two, three,")]  # fmt: skip


def test_backends_report_the_context_they_check(vllm_small, hf_small):
    assert vllm_small.context_length == CONTEXT  # read back from the engine
    assert hf_small.context_length == CONTEXT  # the option, under the model's 8,192 positions


def test_a_long_prompt_is_refused_and_the_rest_of_its_batch_runs(backend):
    n_long = len(render_chat_ids(backend.tokenizer, LONG))
    assert n_long > CONTEXT
    params = SamplingParams(max_tokens=8)
    short, long, cont = backend.generate([SHORT, LONG, PREFILLED], params)
    assert long.error_kind == "too_long" and long.text == "" and long.prompt_tokens == n_long
    assert long.error == f"needs {n_long} prompt tokens + 8 generated, context is {CONTEXT}"
    for c, prompt in ((short, SHORT), (cont, PREFILLED)):
        assert c.ok and c.error is None, c.error
        assert c.completion_tokens > 0 and c.text and c.finish_reason in ("stop", "length")
        assert c.prompt_tokens == len(render_chat_ids(backend.tokenizer, prompt))
    # The others were served as they are without it. Their greedy texts are not compared: the
    # bundled model copies the fence's hex tag, whose tokens flip on a bf16 logit step between
    # calls (observed with the same batch on a warm cache), which is not what is tested here.
    alone = backend.generate([SHORT, PREFILLED], params)
    assert [c.prompt_tokens for c in alone] == [short.prompt_tokens, cont.prompt_tokens]
    assert all(c.ok and c.text for c in alone)


def test_the_check_counts_the_template_and_the_prefill_exactly(backend):
    # A prefilled prompt a few tokens short of the context, so the boundary costs little to generate.
    def prompt(k: int) -> list[Message]:
        return [Message(role="user", content="Repeat: " + " ".join(["sea"] * k)),
                Message(role="assistant", content="sea sea")]  # fmt: skip

    lo, hi = 1, CONTEXT
    while lo < hi:  # the most words whose prompt leaves at least 4 tokens
        mid = (lo + hi + 1) // 2
        if len(render_chat_ids(backend.tokenizer, prompt(mid))) <= CONTEXT - 4:
            lo = mid
        else:
            hi = mid - 1
    p = prompt(lo)
    n = len(render_chat_ids(backend.tokenizer, p))
    room = CONTEXT - n
    assert 4 <= room < 12
    at_limit, over = backend.generate([p, p], [SamplingParams(max_tokens=room), SamplingParams(max_tokens=room + 1)])
    assert at_limit.ok and at_limit.prompt_tokens == n and 0 < at_limit.completion_tokens <= room, at_limit.error
    assert over.error_kind == "too_long"
    assert over.error == f"needs {n} prompt tokens + {room + 1} generated, context is {CONTEXT}"


#: A schema whose regular expression does not compile: the engine's grammar compiler refuses it.
BAD_SCHEMA = {"type": "object", "properties": {"a": {"type": "string", "pattern": "(("}}, "required": ["a"]}


def test_a_request_the_engine_fails_on_fails_alone(backend):
    ok = SamplingParams(max_tokens=6)
    bad = SamplingParams(max_tokens=6, json_schema=BAD_SCHEMA)
    first, broken, last = backend.generate([SHORT, SHORT, PREFILLED], [ok, bad, ok])
    assert broken.error_kind == "backend" and broken.text == "" and broken.error
    assert first.ok and last.ok and first.completion_tokens > 0 and last.completion_tokens > 0
    if backend.name == "vllm":
        # vLLM itself refuses the whole call with the bad request in it: the backend retried one by one.
        ids = [render_chat_ids(backend.tokenizer, p) for p in (SHORT, SHORT, PREFILLED)]
        with pytest.raises(Exception):
            backend._run(ids, [ok, bad, ok])
    # The engine is still usable afterwards, and nothing of the failed call leaks into the next.
    (again,) = backend.generate([SHORT], ok)
    assert again.ok and again.text == first.text


def test_a_failed_engine_step_leaves_nothing_queued(vllm_small, monkeypatch):
    # A step that raises after the requests were added (vLLM does not abort them then): the backend
    # aborts them, or they would hold their KV blocks and come back in later calls; a few such
    # failures filled the cache and hung the next call.
    engine = vllm_small.llm.llm_engine
    real_step, calls = engine.step, []

    def step_failing_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("step failed")
        return real_step()

    monkeypatch.setattr(engine, "step", step_failing_once)
    ok = SamplingParams(max_tokens=6)
    first, second = vllm_small.generate([SHORT, PREFILLED], ok)  # the call fails, one by one succeeds
    assert len(calls) > 1 and first.ok and second.ok, (first.error, second.error)
    assert not engine.has_unfinished_requests()
    monkeypatch.setattr(engine, "step", real_step)
    (again,) = vllm_small.generate([SHORT], ok)
    assert again.ok and again.text == first.text


def test_a_judge_with_middle_truncation_scores_the_long_item_on_the_real_model(backend):
    from judge.scoring import Judge

    long = Item(id="long", prompt="Describe the sea.", response=" ".join(f"wave{i}" for i in range(1500)))
    short = Item(id="short", prompt="Describe the sea.", response="The sea is large, salty and always moving.")
    refusing = Judge("helpfulness", backend)
    by_id = {j.item_id: j for j in refusing.score([long, short])}
    assert by_id["long"].status == "unscored" and by_id["long"].extra["error_kind"] == "too_long"
    assert by_id["short"].status == "scored"

    judge = Judge("helpfulness", backend, truncation="middle")
    by_id = {j.item_id: j for j in judge.score([long, short])}
    cut = by_id["long"]
    assert cut.status == "scored", cut.error
    assert set(cut.extra["truncation"]) == {"response"} and cut.extra["truncation"]["response"] > 1000
    assert cut.trace.truncation == cut.extra["truncation"]
    assert cut.prompt_tokens <= CONTEXT and cut.prompt_tokens > CONTEXT - 64  # cut to fit, not far below
    assert by_id["short"].status == "scored" and "truncation" not in by_id["short"].extra
