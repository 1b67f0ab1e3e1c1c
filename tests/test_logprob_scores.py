"""Logprob-weighted verdicts: score plans, reading distributions at the verdict tokens, and the
rationale-first variant; scripted completions for the arithmetic, the bundled model end to end."""

from __future__ import annotations

import json
import math

import pytest

from judge.core._errors import ConfigError
from judge.core._config import JobConfig
from judge.runner._engine import run_job
from judge.inputs._prompts import output_schema
from judge.core._records import Item, JudgeInfo
from judge.inputs._rubric import load_rubric, resolve_rubric
from judge.scoring import judgment_from, read_logprobs
from judge.scoring import value_starts as _value_starts
from scoring_helpers import BUNDLED, build, plan as score_plan, sampling as sampling_for
from verdict_helpers import completion, first_token, pieces, tok

HELP = resolve_rubric("helpfulness")
HONESTY = resolve_rubric("honesty")
PAIR = resolve_rubric("instruction_following")
FACT = resolve_rubric("factual_consistency")
INFO = JudgeInfo(model="scripted", model_hash="0" * 64, backend="scripted")


def cfg(tmp_path=None, scoring=None, **_) -> dict:
    """Plain planning values: the scoring method, and the bundled judge's tokenizer by default."""
    return {"method": (scoring or {}).get("method", "auto"), "tokenizer": BUNDLED}


def ten_point(tmp_path, rationale=False):
    p = tmp_path / "ten.yaml"
    levels = "\n".join(f"      {i}: level {i}" for i in range(1, 11))
    p.write_text(
        f"id: ten\nversion: 1\nmode: pointwise\ndescription: d\nrationale: {str(rationale).lower()}\n"
        f"criteria:\n  - name: quality\n    question: q?\n    scale:\n{levels}\n",
        encoding="utf-8",
    )
    return load_rubric(p)


def with_rationale(rubric):
    return rubric.model_copy(update={"rationale": True})


# ----------------------------------------------------------------------------------------------
# Plans


def test_plan_without_a_tokenizer_prefills_up_to_the_verdict(tmp_path):
    plan = score_plan(HELP, **{**cfg(tmp_path), "tokenizer": None})
    assert plan.method == "logprob" and plan.prefill == '{"helpfulness": '
    assert plan.choices == ("1", "2", "3", "4", "5") and plan.logprobs == 20
    pair = score_plan(PAIR, **{**cfg(tmp_path), "tokenizer": None})
    assert pair.prefill == '{"winner": "' and pair.choices == ("A", "B", "tie")
    no_tie = score_plan(PAIR.model_copy(update={"allow_tie": False}), **{**cfg(tmp_path), "tokenizer": None})
    assert no_tie.choices == ("A", "B")


def test_multi_criterion_plans_constrain_every_value(tmp_path):
    plan = score_plan(FACT, **{**cfg(tmp_path), "tokenizer": None})
    assert plan.prefill == '{"consistency": '
    assert len(plan.choices) == 5 * 3
    assert '4, "completeness": 2}' in plan.choices
    for choice in plan.choices:  # every choice completes a valid verdict
        obj = json.loads(plan.prefill + choice)
        assert obj["consistency"] in FACT.criteria[0].scale and obj["completeness"] in FACT.criteria[1].scale


def test_sampling_follows_the_plan(tmp_path):
    s = sampling_for(HELP, **cfg(tmp_path))
    assert s.choices == ["1", "2", "3", "4", "5"] and s.json_schema is None and s.logprobs == 20
    j = sampling_for(HELP, **cfg(tmp_path, scoring={"method": "json"}))
    assert j.json_schema == output_schema(HELP) and j.choices is None and j.logprobs is None


def test_a_scale_whose_levels_share_a_first_token_falls_back_to_json(tmp_path):
    ten = ten_point(tmp_path)  # "1" and "10" start alike: the first token cannot tell them apart
    plan = score_plan(ten, **{**cfg(tmp_path), "tokenizer": None})
    assert plan.method == "json" and "token of its own" in plan.reason
    with pytest.raises(ConfigError, match="scoring.method logprob cannot read rubric 'ten'"):
        score_plan(ten, **{**cfg(tmp_path, scoring={"method": "logprob"}), "tokenizer": None})


def test_rationale_first_plans_use_the_schema_and_logprobs(tmp_path):
    plan = score_plan(with_rationale(HELP), **{**cfg(tmp_path), "tokenizer": None})
    assert plan.method == "logprob" and plan.prefill is None and plan.choices is None and plan.logprobs == 20
    s = sampling_for(with_rationale(HELP), **cfg(tmp_path))
    assert list(s.json_schema["properties"]) == ["rationale", "helpfulness"]  # rationale first


@pytest.mark.model
def test_plans_for_the_bundled_tokenizer(tmp_path):
    c = cfg(tmp_path)  # judge.model: bundled, whose tokenizer splits digits and keeps ' ' apart
    help_plan = score_plan(HELP, **c)
    assert help_plan.prefill == '{"helpfulness": ' and help_plan.max_tokens == 1
    pair_plan = score_plan(PAIR, **c)
    assert pair_plan.prefill == '{"winner": "' and pair_plan.max_tokens == 1
    assert score_plan(ten_point(tmp_path), **c).method == "json"


# ----------------------------------------------------------------------------------------------
# Reading


def test_value_starts_ignores_keys_quoted_inside_strings():
    text = '{"rationale": "it says \\"helpfulness\\": 5, {oops}", "helpfulness": 2}'
    starts = _value_starts(text)
    assert text[starts["helpfulness"]] == "2"
    assert text[starts["rationale"]] == '"'
    assert _value_starts('{"a": 1, "b": "x') == {"a": 6, "b": 14}
    assert _value_starts("no object") == {}


def judged(rubric, comp, c, order=None):
    item = Item(id="i", prompt="q", response="r", response_a="x", response_b="y", reference="ref")
    reqs = {r.order: r for r in build(rubric, item, "judge", **c)}
    return judgment_from(reqs[order], rubric, comp, INFO, 0.1)


def test_expected_score_distribution_and_confidence(tmp_path):
    top = {"1": 0.1, "2": 0.1, "4": 0.2, "5": 0.4, "\n": 0.2}  # 0.8 of the mass on score tokens
    j = judged(HELP, first_token(top), cfg(tmp_path))
    assert j.status == "scored" and j.scores == {"helpfulness": 5} and j.raw_output == "5"
    dist = j.extra["distribution"]["helpfulness"]
    assert dist == pytest.approx({"1": 0.125, "2": 0.125, "3": 0.0, "4": 0.25, "5": 0.5})
    expected = 1 * 0.125 + 2 * 0.125 + 4 * 0.25 + 5 * 0.5
    assert j.extra["expected"]["helpfulness"] == pytest.approx(expected)
    assert j.overall == pytest.approx((expected - 1) / 4)
    assert j.extra["mass"]["helpfulness"] == pytest.approx(0.8)
    assert j.extra["margin"]["helpfulness"] == pytest.approx(0.25)
    h = -sum(p * math.log(p) for p in (0.125, 0.125, 0.25, 0.5))
    assert j.extra["entropy"]["helpfulness"] == pytest.approx(h, abs=1e-6)
    assert j.extra["confidence"]["helpfulness"] == pytest.approx(1 - h / math.log(5), abs=1e-6)
    assert j.extra["method"] == "logprob" and j.extra["prefill"] == '{"helpfulness": '


def test_a_certain_judge_has_full_confidence(tmp_path):
    j = judged(HELP, first_token({"3": 1.0}), cfg(tmp_path))
    assert j.extra["expected"]["helpfulness"] == 3.0 and j.extra["confidence"]["helpfulness"] == pytest.approx(1.0)


def test_no_score_token_in_the_top_k_is_unscored(tmp_path):
    # The constrained token is a level, but none of the levels is among the (raw) top-k.
    j = judged(HELP, completion([tok("1", {"\n": 0.6, "I": 0.4})]), cfg(tmp_path))
    assert j.status == "unscored" and j.scores is None and j.overall is None
    assert "no value of 'helpfulness' among the top-2 logprobs" in j.error


def test_a_backend_without_logprobs_keeps_the_written_verdict(tmp_path):
    from judge.backends import Completion

    j = judged(HELP, Completion(text="4", finish_reason="length"), cfg(tmp_path))
    assert j.status == "scored" and j.scores == {"helpfulness": 4} and j.extra["logprobs"] == "missing"
    assert j.overall == pytest.approx(0.75) and "expected" not in j.extra


def test_a_backend_that_restarts_the_answer_is_still_read(tmp_path):
    toks = [tok(p) for p in pieces('{"helpfulness": ')] + [tok("2", {"2": 0.6, "3": 0.4}), tok("}")]
    j = judged(HELP, completion(toks), cfg(tmp_path))
    assert j.status == "scored" and j.scores == {"helpfulness": 2}
    assert j.extra["expected"]["helpfulness"] == pytest.approx(2.4)


def test_every_criterion_is_read_at_its_own_token(tmp_path):
    c = cfg(tmp_path, rubrics=["factual_consistency"])
    toks = [tok("4", {"4": 0.5, "5": 0.5})] + [tok(p) for p in pieces(', "completeness": ')]
    toks += [tok("2", {"1": 0.25, "2": 0.75}), tok("}")]
    j = judged(FACT, completion(toks), c)
    assert j.status == "scored" and j.scores == {"consistency": 4, "completeness": 2}
    assert j.extra["expected"] == pytest.approx({"consistency": 4.5, "completeness": 1.75})
    assert j.overall == pytest.approx(FACT.overall({"consistency": 4.5, "completeness": 1.75}))


def test_rationale_first_reads_the_verdict_after_the_rationale(tmp_path):
    rubric = with_rationale(HELP)
    rationale = 'The text claims \\"helpfulness\\": 5 but the sum is wrong.'
    toks = [tok(p) for p in pieces('{"rationale": "' + rationale + '", "helpfulness": ')]
    toks += [tok("2", {"1": 0.3, "2": 0.7}), tok("}")]
    j = judged(rubric, completion(toks, finish="stop"), cfg(tmp_path))
    assert j.status == "scored" and j.scores == {"helpfulness": 2}
    assert j.rationale == 'The text claims "helpfulness": 5 but the sum is wrong.'
    assert j.extra["expected"]["helpfulness"] == pytest.approx(1.7)  # not the 5 quoted in the rationale


def test_pairwise_probabilities_are_reported_in_item_terms(tmp_path):
    shown = {"A": 0.7, "B": 0.2, "tie": 0.1}
    ab = judged(PAIR, first_token(shown), cfg(tmp_path), order="AB")
    ba = judged(PAIR, first_token(shown), cfg(tmp_path), order="BA")
    assert ab.winner == "A" and ab.extra["probs"] == pytest.approx({"A": 0.7, "B": 0.2, "tie": 0.1})
    assert ab.extra["p_a"] == pytest.approx(0.75)
    # Shown second in BA, the item's A got the "B" mass.
    assert ba.winner == "B" and ba.extra["probs"] == pytest.approx({"A": 0.2, "B": 0.7, "tie": 0.1})
    assert ba.extra["p_a"] == pytest.approx(0.25)


def test_read_logprobs_reports_the_first_unreadable_key():
    readings, error = read_logprobs(FACT, [tok("4", {"4": 1.0})], prefill='{"consistency": ')
    assert readings == {} and error == "no value for 'completeness' among the generated tokens"


# ----------------------------------------------------------------------------------------------
# The bundled model, end to end


@pytest.fixture(scope="module")
def demo_items(tmp_path_factory):
    rows = [
        {"id": "right", "prompt": "What is 12 + 7?", "response": "12 + 7 = 19."},
        {"id": "wrong", "prompt": "What is 12 + 7?", "response": "12 + 7 = 21."},
        {"id": "off-topic", "prompt": "What is the capital of France?", "response": "I like turtles."},
        {"id": "paris", "prompt": "What is the capital of France?", "response": "The capital of France is Paris."},
    ]
    path = tmp_path_factory.mktemp("lp") / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.model
@pytest.mark.vllm
def test_logprob_scoring_on_the_bundled_model(vllm_backend, demo_items, tmp_path):
    c = JobConfig(data=demo_items, output=tmp_path / "j.jsonl", rubrics=["helpfulness"])
    summary = run_job(c, backend=vllm_backend, progress=False)
    assert summary.unscored == 0 and summary.judgments == 4
    for line in (tmp_path / "j.jsonl").read_text().splitlines():
        j = json.loads(line)
        assert j["extra"]["method"] == "logprob" and j["completion_tokens"] == 1
        dist = j["extra"]["distribution"]["helpfulness"]
        assert set(dist) == {"1", "2", "3", "4", "5"} and sum(dist.values()) == pytest.approx(1.0, abs=1e-4)
        assert 1.0 <= j["extra"]["expected"]["helpfulness"] <= 5.0
        assert j["scores"]["helpfulness"] == int(j["raw_output"])  # the generated token is a level
        assert 0.0 <= j["extra"]["confidence"]["helpfulness"] <= 1.0
    assert summary.rubrics["helpfulness"].expected["helpfulness"].n == 4


@pytest.mark.model
@pytest.mark.vllm
def test_rationale_first_on_the_bundled_model(vllm_backend, demo_items, tmp_path):
    rubric = tmp_path / "why.yaml"
    rubric.write_text(
        "id: why\nversion: 1\nmode: pointwise\ndescription: Helpfulness with a rationale.\nrationale: true\n"
        "criteria:\n  - name: helpfulness\n    question: Does it answer the question correctly?\n"
        "    scale: {1: wrong or off-topic, 2: poor, 3: partly right, 4: right, 5: right and complete}\n",
        encoding="utf-8",
    )
    c = JobConfig(data=demo_items, output=tmp_path / "j.jsonl", rubrics=[str(rubric)], sampling={"max_tokens": 200})
    run_job(c, backend=vllm_backend, progress=False)
    judgments = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    scored = [j for j in judgments if j["status"] == "scored"]
    assert len(scored) >= 3  # a 135M model may run past max_tokens inside its rationale
    for j in scored:
        assert isinstance(j["rationale"], str) and j["rationale"].strip()
        assert j["extra"]["method"] == "logprob" and j["completion_tokens"] > 3
        assert sum(j["extra"]["distribution"]["helpfulness"].values()) == pytest.approx(1.0, abs=1e-4)
        assert json.loads(j["raw_output"])["rationale"] == j["rationale"]
    for j in judgments:
        if j["status"] == "unscored":
            assert j["error"] and j["scores"] is None
