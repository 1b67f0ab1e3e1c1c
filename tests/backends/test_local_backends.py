"""The local backends on the real bundled model: vLLM and transformers see the same tokens and agree.

Both run SmolLM2-135M-Instruct in bf16 with different kernels, so their logprobs differ by rounding.
Measured on 15 judge prompts like the ones below (2-core CPU, bf16 on both sides): the greedy first
token was the same on every prompt; the chosen token's logprob differed by at most 0.15 nat, and so
did every top-5 token likelier than 5% (tail tokens near 2% by up to 0.42). The logits are bf16, so
they move in steps of 0.125 at the magnitudes seen here: the differences are one such step, plus the
normaliser. ``TOL`` allows two steps; a verdict-changing disagreement is far larger.
"""

from __future__ import annotations

import json
import math

import pytest

from judge.backends._chat import render_chat_ids
from judge.inputs._prompts import render_messages
from judge.core._records import Item, Message, SamplingParams
from judge.inputs._rubric import resolve_rubric

pytestmark = [pytest.mark.model, pytest.mark.vllm]

#: Largest |logprob(vllm) - logprob(hf)| accepted for the same token, in nats (bf16 on both sides).
TOL = 0.3
#: Tokens less likely than this (in both backends) are rounding noise for the comparison.
MIN_LOGPROB = math.log(0.05)

POINT = [
    Item(id="add", prompt="What is 12 + 7?", response="12 + 7 = 19."),
    Item(id="capital", prompt="What is the capital of France?", response="I like turtles. They are slow."),
]
PAIR = Item(
    id="fruits",
    prompt="List exactly two fruits, comma-separated, nothing else.",
    response_a="Apple, pear",
    response_b="Here are some fruits:\n1. Apple\n2. Pear\n3. Plum",
)
REF = Item(id="spider", prompt="How many legs does a spider have?", response="Six, like insects.", reference="Eight.")


def judge_prompts() -> list[tuple[str, list[Message]]]:
    out = [(f"helpfulness/{it.id}", render_messages(resolve_rubric("helpfulness"), it)) for it in POINT]
    out.append(("honesty/capital", render_messages(resolve_rubric("honesty"), POINT[1])))
    pair = resolve_rubric("instruction_following")
    out += [(f"instruction_following/{o}", render_messages(pair, PAIR, o)) for o in ("AB", "BA")]
    out.append(("factual_consistency/spider", render_messages(resolve_rubric("factual_consistency"), REF)))
    return out


PROMPTS = judge_prompts()


def side_by_side(name: str, v, h) -> str:
    """Both backends' first-token distributions, for failure messages."""
    lines = [f"{name}: vllm chose {v.token!r} ({v.logprob:.3f}), hf chose {h.token!r} ({h.logprob:.3f})"]
    for tok in sorted(set(v.top) | set(h.top), key=lambda t: -max(v.top.get(t, -99), h.top.get(t, -99))):
        lines.append(f"    {tok!r:>14}  vllm {v.top.get(tok, float('nan')):8.3f}   hf {h.top.get(tok, float('nan')):8.3f}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def first_tokens(vllm_backend, hf_backend):
    """One greedy token with top-5 logprobs per prompt, from each backend."""
    params = SamplingParams(max_tokens=1, logprobs=5)
    messages = [m for _, m in PROMPTS]
    return vllm_backend.generate(messages, params), hf_backend.generate(messages, params)


def test_both_backends_render_the_same_token_ids(vllm_backend, hf_backend, first_tokens):
    for (name, messages), v, h in zip(PROMPTS, *first_tokens):
        ids_v = render_chat_ids(vllm_backend.tokenizer, messages)
        ids_h = render_chat_ids(hf_backend.tokenizer, messages)
        assert ids_v == ids_h, name
        assert v.prompt_tokens == h.prompt_tokens == len(ids_v) > 100, name


def test_greedy_first_token_is_the_same(first_tokens):
    vout, hout = first_tokens
    exact = 0
    for (name, _), v, h in zip(PROMPTS, vout, hout):
        vt, ht = v.tokens[0], h.tokens[0]
        if v.finish_reason == h.finish_reason == "length":
            assert v.text == vt.token and h.text == ht.token
        if vt.token == ht.token:
            exact += 1
            continue
        # Only a near-tie may flip under bf16 rounding: then each choice is within TOL of the other's.
        assert vt.token in ht.top and ht.top[vt.token] >= ht.logprob - TOL, side_by_side(name, vt, ht)
    assert exact >= len(PROMPTS) - 1, f"greedy tokens differ on {len(PROMPTS) - exact} prompts"


def test_top_logprobs_agree_within_tolerance(first_tokens):
    worst = 0.0
    for (name, _), v, h in zip(PROMPTS, *first_tokens):
        vt, ht = v.tokens[0], h.tokens[0]
        assert len(vt.top) >= 4 and len(ht.top) >= 4, name  # top-5, minus tokens that decode alike
        for top in (vt.top, ht.top):
            assert sum(math.exp(lp) for lp in top.values()) <= 1.0 + 1e-3, name  # a real distribution
        if vt.token == ht.token:
            assert abs(vt.logprob - ht.logprob) <= TOL, side_by_side(name, vt, ht)
        likely = [t for t in set(vt.top) & set(ht.top) if max(vt.top[t], ht.top[t]) >= MIN_LOGPROB]
        assert likely, side_by_side(name, vt, ht)
        for tok in likely:
            diff = abs(vt.top[tok] - ht.top[tok])
            worst = max(worst, diff)
            assert diff <= TOL, side_by_side(name, vt, ht)
        # A token likely in one backend is among the other's top 5 as well.
        for tok, lp in vt.top.items():
            if lp >= math.log(0.2):
                assert tok in ht.top, side_by_side(name, vt, ht)
    print(f"\nlargest vllm-vs-hf logprob difference over likely tokens: {worst:.4f} nats (tolerance {TOL})")


def test_choice_constrained_verdicts_agree(vllm_backend, hf_backend):
    """Constrained to A or B, both backends put the same mass on each label."""
    params = SamplingParams(max_tokens=1, logprobs=2, choices=["A", "B"])
    pair = [m for name, m in PROMPTS if name.startswith("instruction_following")]
    for v, h in zip(vllm_backend.generate(pair, params), hf_backend.generate(pair, params)):
        assert v.text in ("A", "B") and h.text in ("A", "B")
        vt, ht = v.tokens[0], h.tokens[0]
        for top in (vt.top, ht.top):
            assert set(top) >= {"A", "B"}
            assert math.exp(top["A"]) + math.exp(top["B"]) == pytest.approx(1.0, abs=1e-3)
        assert abs(vt.top["A"] - ht.top["A"]) <= TOL, side_by_side("choice", vt, ht)
        if abs(ht.top["A"] - ht.top["B"]) > 2 * TOL:
            assert v.text == h.text, side_by_side("choice", vt, ht)


@pytest.mark.parametrize("backend_name", ["vllm_backend", "hf_backend"])
def test_json_schema_output_and_token_accounting(request, backend_name):
    backend = request.getfixturevalue(backend_name)
    rubric = resolve_rubric("factual_consistency")
    from judge.inputs._prompts import output_schema

    params = SamplingParams(max_tokens=40, json_schema=output_schema(rubric))
    (c,) = backend.generate([render_messages(rubric, REF)], params)
    verdict = json.loads(c.text)  # constrained decoding: always valid JSON in the rubric's schema
    assert set(verdict) == {"consistency", "completeness"}
    assert verdict["consistency"] in range(1, 6) and verdict["completeness"] in range(1, 4)
    assert c.finish_reason == "stop"
    assert c.prompt_tokens == len(render_chat_ids(backend.tokenizer, render_messages(rubric, REF)))
    assert 0 < c.completion_tokens <= 40


@pytest.mark.parametrize("backend_name", ["vllm_backend", "hf_backend"])
def test_length_limit_and_continuation(request, backend_name):
    backend = request.getfixturevalue(backend_name)
    prompt = [Message(role="user", content="Count from one to twenty in words, separated by commas.")]
    prefilled = prompt + [Message(role="assistant", content="one, two, three,")]
    short, cont = backend.generate([prompt, prefilled], SamplingParams(max_tokens=3))
    assert short.finish_reason == "length" and short.completion_tokens == 3
    assert cont.finish_reason == "length" and cont.completion_tokens == 3
    # The prefill is continued, not repeated, and counts as prompt.
    assert not cont.text.lstrip().startswith("one")
    assert cont.prompt_tokens > short.prompt_tokens


def test_info_identifies_each_backend(vllm_backend, hf_backend, model_dir):
    from judge.backends._base import fingerprint_model_dir

    v, h = vllm_backend.info(), hf_backend.info()
    assert v.backend == "vllm" and v.backend_version.startswith("vllm ")
    assert h.backend == "hf" and h.backend_version.startswith("transformers ")
    assert v.model == h.model == model_dir
    assert v.model_hash == h.model_hash == fingerprint_model_dir(model_dir)
    assert v.dtype == h.dtype == "bfloat16"
