"""Fitting items into the judge's context, with the bundled model's real tokenizer and chat template.

Counts are checked against :func:`render_chat_ids` (what the local backends send), so "fits" here
means the vLLM and hf backends would accept the request.
"""

from __future__ import annotations

import pytest

from judge.backends._chat import render_chat_ids
from judge.core._records import Item
from judge.inputs._prompts import render_messages
from judge.inputs._rubric import resolve_rubric
from judge.scoring._fit import MIN_KEEP, chat_tokenizer, count_request_tokens, fit_item, truncation_marker

pytestmark = pytest.mark.model

PAIR = resolve_rubric("instruction_following")
REF = resolve_rubric("factual_consistency")
PREFILL = '{"winner": "'


@pytest.fixture(scope="module")
def tok(model_dir):
    return chat_tokenizer(model_dir)


def words(n: int, stem: str = "w") -> str:
    return " ".join(f"{stem}{i}" for i in range(n))


def pair_render(item: Item):
    return [render_messages(PAIR, item, o, sanitize=True, prefill=PREFILL) for o in ("AB", "BA")]


def ref_render(item: Item):
    return [render_messages(REF, item, sanitize=True)]


def exact(tok, render, item) -> int:
    return max(len(render_chat_ids(tok, m)) for m in render(item))


def test_an_item_that_fits_is_returned_as_it_is(tok):
    item = Item(id="ok", prompt="Name a fruit.", response_a="Apple.", response_b="A pear, I think.")
    fit = fit_item(item, pair_render, tokenizer=tok, context_length=4096, max_tokens=2, policy="middle")
    assert fit.fits and fit.item is item and fit.truncation == {} and fit.extra() == {}
    assert fit.prompt_tokens == exact(tok, pair_render, item) and fit.available == 4094


def test_without_a_policy_a_long_item_is_refused_with_tokens_needed_and_available(tok):
    item = Item(id="long", prompt="Which is better?", response_a=words(3000), response_b="Short.")
    need = exact(tok, pair_render, item)
    fit = fit_item(item, pair_render, tokenizer=tok, context_length=2048, max_tokens=4)
    assert not fit.fits and fit.item is item and fit.truncation == {}
    assert need > 2048 and fit.prompt_tokens == need
    assert fit.error == f"needs {need} prompt tokens + 4 generated, context is 2048"
    # One token of room more or less decides it: the count is exact, template and prefill included.
    assert fit_item(item, pair_render, tokenizer=tok, context_length=need + 4, max_tokens=4).fits
    assert not fit_item(item, pair_render, tokenizer=tok, context_length=need + 3, max_tokens=4).fits


def test_middle_truncation_cuts_the_longest_text_until_both_orders_fit(tok):
    long_a, short_b = words(3000), "A short answer, which stays whole."
    item = Item(id="long", prompt="Which is better?", response_a=long_a, response_b=short_b)
    fit = fit_item(item, pair_render, tokenizer=tok, context_length=2048, max_tokens=4, policy="middle")
    assert fit.fits, fit.error
    # Every request the item makes (both orders) is under the context, counted independently.
    assert exact(tok, pair_render, fit.item) == fit.prompt_tokens <= 2048 - 4
    assert fit.prompt_tokens > 2048 - 4 - 64  # and not cut far more than needed
    # Only the long text was cut, its middle replaced by a marker that says how much.
    assert set(fit.truncation) == {"response_a"} and fit.item.response_b == short_b
    cut = fit.truncation["response_a"]
    a = fit.item.response_a
    assert truncation_marker(cut) in a and a.startswith("w0 w1 w2") and a.endswith("w2998 w2999")
    head, tail = a.split(f"\n{truncation_marker(cut)}\n")
    n_orig = len(tok(long_a, add_special_tokens=False)["input_ids"])
    kept = len(tok(head, add_special_tokens=False)["input_ids"]) + len(tok(tail, add_special_tokens=False)["input_ids"])
    assert cut == n_orig - kept  # the recorded count is the tokens that went
    assert fit.extra() == {"truncation": {"response_a": cut}}
    # The fences and instructions are untouched: the same system message, three intact data blocks.
    before, after = pair_render(item)[0], pair_render(fit.item)[0]
    assert after[:-2] == before[:-2] and after[0].role == "system"  # instructions and examples as they were
    turn = after[-2]  # the item's own turn
    assert turn.role == "user" and truncation_marker(cut) in turn.content
    assert turn.content.count("<<<DATA-") == 3 and turn.content.count("<<<END-") == 3
    assert turn.content.endswith(before[-2].content[-400:])  # the reminder after the data is intact
    assert after[-1].role == "assistant" and after[-1].content == PREFILL
    assert item.response_a == long_a  # the caller's item is not changed


def test_two_long_texts_are_levelled_down_together(tok):
    item = Item(
        id="both", prompt="How many legs?", response=words(2400, "r"), reference=words(900, "f")
    )
    fit = fit_item(item, ref_render, tokenizer=tok, context_length=2048, max_tokens=16, policy="middle")
    assert fit.fits and set(fit.truncation) == {"response", "reference"}
    assert fit.truncation["response"] > fit.truncation["reference"] > 0  # the longer lost more
    n = {f: len(tok(getattr(item, f), add_special_tokens=False)["input_ids"]) for f in fit.truncation}
    kept = {f: n[f] - fit.truncation[f] for f in n}
    assert abs(kept["response"] - kept["reference"]) <= 2  # cut to a common length, longest first
    assert exact(tok, ref_render, fit.item) <= 2048 - 16


def test_multibyte_text_is_cut_between_characters(tok):
    text = "北京是中国的首都。" * 400 + "🙂" * 300
    item = Item(id="cjk", prompt="Summarise.", response=text, reference="Beijing.")
    fit = fit_item(item, ref_render, tokenizer=tok, context_length=2048, max_tokens=8, policy="middle")
    assert fit.fits and "response" in fit.truncation
    assert "\ufffd" not in fit.item.response
    assert fit.item.response.startswith("北京是中国") and fit.item.response.endswith("🙂🙂")


def test_what_cannot_fit_even_when_cut_is_refused(tok):
    # The user prompt is never cut, so an item whose prompt alone overflows cannot be saved.
    item = Item(id="q", prompt=words(3000), response_a="A.", response_b="B.")
    fit = fit_item(item, pair_render, tokenizer=tok, context_length=2048, max_tokens=4, policy="middle")
    assert not fit.fits and fit.truncation == {} and fit.item is item
    assert fit.error.startswith(f"needs {exact(tok, pair_render, item)} prompt tokens + 4 generated, context is 2048")
    assert "cutting the middle of response_a, response_b still leaves" in fit.error
    # A context smaller than the rubric's own prompt: texts cut to their minimum do not help.
    item = Item(id="r", prompt="Q?", response_a=words(500), response_b=words(500))
    fit = fit_item(item, pair_render, tokenizer=tok, context_length=700, max_tokens=4, policy="middle")
    assert not fit.fits and "still leaves" in fit.error
    assert MIN_KEEP > 0


def test_without_a_tokenizer_counts_are_upper_bounds_and_nothing_is_cut(tok):
    item = Item(id="x", prompt="Which is better?", response_a=words(800), response_b="Short.")
    for m in pair_render(item):
        assert count_request_tokens(m, None) >= count_request_tokens(m, tok) == len(render_chat_ids(tok, m))
    fit = fit_item(item, pair_render, tokenizer=None, context_length=2048, max_tokens=4, policy="middle")
    assert not fit.fits and fit.truncation == {}  # a bound says "may not fit"; cutting needs real tokens


def test_bad_policy_and_no_room_are_errors(tok):
    item = Item(id="x", prompt="Q?", response_a="A.", response_b="B.")
    with pytest.raises(ValueError, match=r"truncation policy must be 'none' or 'middle', got 'head'"):
        fit_item(item, pair_render, tokenizer=tok, context_length=2048, max_tokens=4, policy="head")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_tokens 2048 leaves no prompt room in a context of 2048"):
        fit_item(item, pair_render, tokenizer=tok, context_length=2048, max_tokens=2048)


# ----------------------------------------------------------------------------------------------
# Wired into the judge: judge.truncation


def _judge(model_dir, truncation, context):
    from judge.backends._scripted import ScriptedBackend
    from judge.scoring import Judge

    seen: list = []

    def respond(prompt, params):
        seen.append(prompt)
        return '{"winner": "A"}'

    # The scripted backend counts words, fewer than tokens: what it refuses, a real one would too.
    be = ScriptedBackend(respond, max_model_len=context)
    judge = Judge("instruction_following", be, model=model_dir, truncation=truncation, batch_size=8)
    return judge, seen


def test_the_judge_cuts_a_long_pair_records_the_cut_and_sends_the_rest_untouched(model_dir, tok):
    long = Item(id="long", prompt="Which is better?", response_a=words(4000), response_b="Short.")
    short = Item(id="short", prompt="Name a fruit.", response_a="Apple.", response_b="A pear.")
    judge, seen = _judge(model_dir, "middle", 2048)
    reqs = judge.requests(long)
    assert len(reqs) == 2 and all(r.trace.truncation == {"response_a": reqs[0].trace.truncation["response_a"]} for r in reqs)
    for r in reqs:  # under the context by the judge model's own count, both orders
        assert len(render_chat_ids(tok, r.messages)) + r.sampling.max_tokens <= 2048
    assert judge.requests(short) == [r for r in judge.requests(short) if not r.trace.truncation]
    verdicts = judge.compare([long, short])
    assert [v.item_id for v in verdicts] == ["long", "short"]  # the long pair is judged, not lost
    judgments = judge.score([long, short])
    cut = [j for j in judgments if j.item_id == "long"]
    assert len(cut) == 2 and all(j.status == "scored" and j.extra["truncation"] == reqs[0].trace.truncation for j in cut)
    assert all("truncation" not in j.extra and not j.trace.truncation for j in judgments if j.item_id == "short")
    marker = truncation_marker(reqs[0].trace.truncation["response_a"])
    assert sum(marker in m[-2].content for m in seen) == 4  # the item's own turn, both orders, in both calls


def test_without_truncation_the_long_item_is_refused_with_its_reason(model_dir):
    long = Item(id="long", prompt="Which is better?", response_a=words(4000), response_b="Short.")
    judge, seen = _judge(model_dir, "none", 2048)
    judgments = judge.score([long])
    assert all(j.status == "unscored" and j.extra["error_kind"] == "too_long" for j in judgments)
    assert all("context is 2048" in j.error and "truncation" not in j.extra for j in judgments)
    assert seen == []  # nothing was answered


def test_truncation_needs_the_judges_own_tokenizer():
    from judge.core._errors import ConfigError
    from judge.scoring import Judge

    with pytest.raises(ConfigError, match=r"judge.truncation 'middle' .* local model directory, got 'served-name'"):
        Judge("helpfulness", "openai", model="served-name", options={"base_url": "http://127.0.0.1:9/v1"},
              truncation="middle")  # fmt: skip
