"""The scripted backend fails chosen requests the way real backends do, for the runner's tests.

No model: what matters here is the shape of a per-request failure (an error completion in its
place, the rest of the batch answered) and that a failed request does not consume a script entry.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from judge.backends import Completion, create_backend
from judge.backends._scripted import ScriptedBackend
from judge.core._records import Message, SamplingParams


def ask(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def test_chosen_prompts_fail_and_the_rest_of_the_batch_is_answered():
    def fail(prompt, params):
        text = prompt[0].content
        return "too_long" if "long" in text else "backend" if "boom" in text else None

    be = ScriptedBackend(["first", "second"], fail=fail)
    out = be.generate([ask("one"), ask("a long one"), ask("boom goes this"), ask("two")], SamplingParams(max_tokens=5))
    assert [c.error_kind for c in out] == [None, "too_long", "backend", None]
    # Failed requests return no text and do not consume the script: the queue answers in order.
    assert [c.text for c in out] == ["first", "", "", "second"]
    assert out[0].ok and not out[1].ok and not out[2].ok
    assert out[1].error == "needs 3 prompt tokens + 5 generated, context is 7" and out[1].prompt_tokens == 3
    assert out[2].error == "scripted failure of this request" and out[2].text == ""
    assert len(be.calls) == 4  # every request was seen, failed or not


def test_a_context_length_refuses_what_does_not_fit_like_a_real_backend():
    be = ScriptedBackend(lambda p, s: "ok", max_model_len=10)
    params = [SamplingParams(max_tokens=4), SamplingParams(max_tokens=5), SamplingParams(max_tokens=1)]
    six_words = ask("one two three four five six")
    fits, over, long = be.generate([six_words, six_words, ask(" ".join(["w"] * 10))], params)
    assert fits.ok and fits.text == "ok"  # 6 + 4 = 10: exactly the context
    assert over.error_kind == "too_long" and over.error == "needs 6 prompt tokens + 5 generated, context is 10"
    assert long.error == "needs 10 prompt tokens + 1 generated, context is 10"
    # The same option from a config.
    cfg_be = create_backend("scripted", responder=lambda p, s: "ok", max_model_len=10)
    assert cfg_be.generate([six_words], SamplingParams(max_tokens=5))[0].error_kind == "too_long"


def test_bad_failure_kinds_and_contexts_are_errors():
    be = ScriptedBackend(lambda p, s: "ok", fail=lambda p, s: "maybe")
    with pytest.raises(ValueError, match=r"fail returned 'maybe'; expected None, 'too_long' or 'backend'"):
        be.generate([ask("x")], SamplingParams())
    with pytest.raises(ValueError, match=r"max_model_len must be >= 1, got 0"):
        ScriptedBackend(lambda p, s: "ok", max_model_len=0)


def test_a_completion_has_an_error_and_its_kind_together_or_neither():
    assert Completion(text="x").ok
    with pytest.raises(ValidationError, match="set together"):
        Completion(text="", error="something broke")
    with pytest.raises(ValidationError, match="set together"):
        Completion(text="", error_kind="backend")
    with pytest.raises(ValidationError):
        Completion(text="", error="x", error_kind="timeout")  # not a kind
