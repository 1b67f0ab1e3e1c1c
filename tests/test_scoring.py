"""Parsing judge output into verdicts, and requests into traceable judgments."""

from __future__ import annotations

import pydantic
import pytest

from judge.backends import Completion
from judge.inputs._prompts import output_schema, prompt_hash, render_messages
from judge.core._records import Item, JudgeInfo, Judgment, RubricRef, SamplingParams
from judge.inputs._rubric import resolve_rubric
from judge.scoring import extract_json_object, item_fits, judgment_from, parse_verdict, request_key
from scoring_helpers import build, sampling

HONESTY = resolve_rubric("honesty")  # truthfulness, calibration, transparency: 1-5
HELP = resolve_rubric("helpfulness")
PAIR = resolve_rubric("instruction_following")
FACT = resolve_rubric("factual_consistency")  # consistency 1-5, completeness 1-3
INFO = JudgeInfo(model="scripted", model_hash="0" * 64, backend="scripted")


# ----------------------------------------------------------------------------------------------
# parse_verdict


@pytest.mark.parametrize(
    "text",
    [
        '{"truthfulness": 4, "calibration": 3, "transparency": 5}',
        '```json\n{"truthfulness": 4, "calibration": 3, "transparency": 5}\n```',
        'Here is my verdict: {"truthfulness": 4, "calibration": 3, "transparency": 5}. Thanks!',
        'The response {mostly} holds up.\n{"truthfulness": 4, "calibration": 3, "transparency": 5}',
        '{"transparency": 5, "truthfulness": 4, "calibration": 3, "note": "extra keys are ignored"}',
        '{"truthfulness": "4", "calibration": " 3 ", "transparency": 5.0}',
    ],
)
def test_valid_verdicts(text):
    v = parse_verdict(HONESTY, text)
    assert v.scored and v.error is None
    assert v.scores == {"truthfulness": 4, "calibration": 3, "transparency": 5}
    assert all(type(s) is int for s in v.scores.values())


@pytest.mark.parametrize(
    "text, error",
    [
        ('{"truthfulness": 4, "calibration": 3}', "missing score for 'transparency'"),
        ('{"truthfulness": 4, "calibration": 3, "transparency": null}', "missing score for 'transparency'"),
        ('{"truthfulness": 6, "calibration": 3, "transparency": 5}', "truthfulness must be an integer in 1..5, got 6"),
        ('{"truthfulness": 0, "calibration": 3, "transparency": 5}', "got 0"),
        ('{"truthfulness": -2, "calibration": 3, "transparency": 5}', "got -2"),
        ('{"truthfulness": 4.5, "calibration": 3, "transparency": 5}', "got 4.5"),
        ('{"truthfulness": true, "calibration": 3, "transparency": 5}', "got True"),
        ('{"truthfulness": false, "calibration": 3, "transparency": 5}', "got False"),
        ('{"truthfulness": "four", "calibration": 3, "transparency": 5}', "got 'four'"),
        ('{"truthfulness": "--3", "calibration": 3, "transparency": 5}', "got '--3'"),
        ('{"truthfulness": "\u00b2", "calibration": 3, "transparency": 5}', "got '\u00b2'"),
        ('{"truthfulness": [4], "calibration": 3, "transparency": 5}', "got [4]"),
        ('{"truthfulness": {"score": 4}, "calibration": 3, "transparency": 5}', "truthfulness must be an integer"),
        ("I think it deserves a 4.", "no JSON object in the output"),
        ("", "no JSON object in the output"),
        ('{"truthfulness": 4, "calibration": 3, ', "no JSON object in the output"),
        ("[4, 3, 5]", "no JSON object in the output"),
    ],
)
def test_unreadable_verdicts_are_unscored_with_a_reason(text, error):
    v = parse_verdict(HONESTY, text)
    assert not v.scored
    assert v.scores is None and v.winner is None
    assert error in v.error


def test_booleans_never_count_as_one():
    # True == 1 in Python and 1 is on the scale: it must still be rejected.
    v = parse_verdict(HELP, '{"helpfulness": true}')
    assert not v.scored and v.scores is None


def test_rationale_is_kept_only_as_text():
    v = parse_verdict(HELP, '{"rationale": "Correct and short.", "helpfulness": 5}')
    assert v.rationale == "Correct and short." and v.scores == {"helpfulness": 5}
    v = parse_verdict(HELP, '{"rationale": 3, "helpfulness": 5}')
    assert v.rationale is None and v.scores == {"helpfulness": 5}
    v = parse_verdict(HELP, '{"rationale": "Kept even when unscored.", "helpfulness": 9}')
    assert not v.scored and v.rationale == "Kept even when unscored."


def test_scales_other_than_one_to_five():
    assert parse_verdict(FACT, '{"consistency": 5, "completeness": 3}').scores == {"consistency": 5, "completeness": 3}
    v = parse_verdict(FACT, '{"consistency": 5, "completeness": 4}')
    assert not v.scored and "completeness must be an integer in 1..3, got 4" in v.error


@pytest.mark.parametrize(
    "answer, winner",
    [("A", "A"), ("B", "B"), ("tie", "tie"), ("a", "A"), (" b ", "B"), ("TIE", "tie"), ("Tie", "tie")],
)
def test_pairwise_winner_is_normalised(answer, winner):
    v = parse_verdict(PAIR, f'{{"winner": "{answer}"}}')
    assert v.scored and v.winner == winner and v.scores is None


@pytest.mark.parametrize(
    "text, error",
    [
        ('{"winner": "C"}', "winner must be one of A, B, tie, got 'C'"),
        ('{"winner": "Response A"}', "got 'Response A'"),
        ('{"winner": 1}', "missing 'winner'"),
        ('{"verdict": "A"}', "missing 'winner'"),
        ("A", "no JSON object"),
    ],
)
def test_bad_pairwise_verdicts(text, error):
    v = parse_verdict(PAIR, text)
    assert not v.scored and v.winner is None and error in v.error


def test_tie_refused_when_the_rubric_forbids_it():
    strict = PAIR.model_copy(update={"allow_tie": False})
    v = parse_verdict(strict, '{"winner": "tie"}')
    assert not v.scored and "winner must be one of A, B, got 'tie'" in v.error


def test_extract_json_object():
    assert extract_json_object('x {"a": {"b": 1}} y {"c": 2}') == {"a": {"b": 1}}
    assert extract_json_object('{"unclosed": 1 then {"ok": true}') == {"ok": True}
    assert extract_json_object('["list"] {"obj": 1}') == {"obj": 1}
    assert extract_json_object("no braces") is None
    assert extract_json_object("{not json}") is None


# ----------------------------------------------------------------------------------------------
# Judgments


def test_unscored_judgment_refuses_numbers():
    base = dict(
        key="k",
        item_id="i",
        rubric=RubricRef(id="helpfulness", version=1, hash="h"),
        judge=INFO,
        sampling=SamplingParams(),
        prompt_hash="p",
        kind="pointwise",
        raw_output="garbage",
    )
    with pytest.raises(pydantic.ValidationError, match="carries no scores or verdict"):
        Judgment(status="unscored", error="bad", scores={"helpfulness": 3}, **base)
    with pytest.raises(pydantic.ValidationError, match="carries no scores or verdict"):
        Judgment(status="unscored", error="bad", overall=0.5, **base)
    with pytest.raises(pydantic.ValidationError, match="carries no scores or verdict"):
        Judgment(status="unscored", error="bad", winner="A", **{**base, "kind": "pairwise"})
    with pytest.raises(pydantic.ValidationError, match="must say why"):
        Judgment(status="unscored", **base)
    ok = Judgment(status="unscored", error="no JSON object in the output", **base)
    assert Judgment.model_validate_json(ok.model_dump_json()) == ok
    with pytest.raises(pydantic.ValidationError):
        Judgment(status="scored", scores={"helpfulness": 3}, surprise=1, **base)


def completion(text: str, finish: str = "stop") -> Completion:
    return Completion(text=text, prompt_tokens=120, completion_tokens=9, finish_reason=finish)


def test_garbage_output_becomes_an_unscored_judgment_with_the_raw_text(tmp_path):
    item = Item(id="i1", prompt="q", response="r")
    (req,) = build(HELP, item, "judge-id")
    raw = "I would rate this response quite highly, maybe four or five."
    j = judgment_from(req, HELP, completion(raw), INFO, 0.25)
    assert j.status == "unscored"
    assert j.scores is None and j.overall is None and j.winner is None
    assert j.raw_output == raw
    assert j.error == "no JSON object in the output"
    assert (j.prompt_tokens, j.completion_tokens) == (120, 9)


def test_truncated_output_says_so(tmp_path):
    item = Item(id="i1", prompt="q", response="r")
    (req,) = build(HELP, item, "judge-id")
    j = judgment_from(req, HELP, completion('{"helpful', finish="length"), INFO, 0.1)
    assert j.status == "unscored" and "output truncated at max_tokens" in j.error
    # A complete verdict that happens to end at the limit is still a verdict.
    j = judgment_from(req, HELP, completion('{"helpfulness": 2}', finish="length"), INFO, 0.1)
    assert j.status == "scored" and j.scores == {"helpfulness": 2}


def test_scored_judgment_carries_the_whole_trace(tmp_path):
    item = Item(id="i1", prompt="q", response="r", reference="ref")
    (req,) = build(FACT, item, "judge-id")
    j = judgment_from(req, FACT, completion('{"consistency": 4, "completeness": 3}'), INFO, 0.5)
    assert j.status == "scored" and j.error is None
    assert j.scores == {"consistency": 4, "completeness": 3}
    assert j.overall == pytest.approx(FACT.overall(j.scores))
    assert j.rubric == RubricRef(id="factual_consistency", version=1, hash=FACT.content_hash)
    assert j.judge == INFO
    assert j.key == req.key and j.item_id == "i1" and j.kind == "reference"
    assert j.prompt_hash == prompt_hash(render_messages(FACT, item))
    assert j.sampling.json_schema == output_schema(FACT)
    assert j.latency_s == 0.5 and j.created_at


@pytest.mark.parametrize(
    "order, said, means",
    [("AB", "A", "A"), ("AB", "B", "B"), ("BA", "A", "B"), ("BA", "B", "A"), ("AB", "tie", "tie"), ("BA", "tie", "tie")],
)
def test_pairwise_verdicts_are_reported_in_item_terms(tmp_path, order, said, means):
    item = Item(id="p", prompt="q", response_a="first", response_b="second")
    reqs = {r.order: r for r in build(PAIR, item, "judge-id")}
    j = judgment_from(reqs[order], PAIR, completion(f'{{"winner": "{said}"}}'), INFO, 0.1)
    assert j.order == order and j.winner == means and j.status == "scored"


def test_a_failed_pairwise_verdict_never_turns_into_a_winner(tmp_path):
    item = Item(id="p", prompt="q", response_a="first", response_b="second")
    for req in build(PAIR, item, "judge-id"):
        j = judgment_from(req, PAIR, completion('{"winner": "neither"}'), INFO, 0.1)
        assert j.status == "unscored" and j.winner is None


# ----------------------------------------------------------------------------------------------
# Requests


def test_pairwise_requests_in_both_orders_or_one(tmp_path):
    item = Item(id="p", prompt="q", response_a="first", response_b="second")
    both = build(PAIR, item, "judge-id")
    assert [r.order for r in both] == ["AB", "BA"]
    assert both[0].key != both[1].key and both[0].prompt_hash != both[1].prompt_hash
    one = build(PAIR, item, "judge-id", orders="AB")
    assert [r.order for r in one] == ["AB"] and one[0].key == both[0].key
    (single,) = build(HELP, Item(id="i", prompt="q", response="r"), "judge-id")
    assert single.order is None and single.kind == "pointwise"


def test_request_key_is_a_content_address(tmp_path):
    item = Item(id="i", prompt="q", response="r")
    (a,) = build(HELP, item, "judge-1")
    (b,) = build(HELP, item, "judge-1")
    assert a.key == b.key == request_key(HELP, "judge-1", a.sampling, a.prompt_hash)
    (other_judge,) = build(HELP, item, "judge-2")
    (other_sampling,) = build(HELP, item, "judge-1", max_tokens=32)
    (other_text,) = build(HELP, Item(id="i", prompt="q", response="r!"), "judge-1")
    (other_rubric,) = build(HELP.model_copy(update={"version": 2}), item, "judge-1")
    keys = {a.key, other_judge.key, other_sampling.key, other_text.key, other_rubric.key}
    assert len(keys) == 5


def test_sampling_for_adds_the_rubric_schema(tmp_path):
    s = sampling(HONESTY, max_tokens=48, temperature=0.0, seed=7)
    assert (s.temperature, s.max_tokens, s.seed) == (0.0, 48, 7)
    assert s.json_schema == output_schema(HONESTY) and s.choices is None


def test_item_fits():
    assert item_fits(HELP, Item(prompt="q", response="r")) is None
    assert "needs field(s) ['response']" in item_fits(HELP, Item(prompt="q", response_a="a", response_b="b"))
    assert "['response_b']" in item_fits(PAIR, Item(prompt="q", response_a="a"))
    assert "['reference']" in item_fits(FACT, Item(prompt="q", response="r"))
    assert item_fits(FACT, Item(prompt="q", response="r", reference="x")) is None


def test_item_ids_are_derived_from_content():
    a = Item(prompt="q", response="r")
    assert a.id.startswith("item-") and a.id == Item(prompt="q", response="r").id
    assert a.id != Item(prompt="q", response="r2").id
    assert Item(id="given", prompt="q", response="r").id == "given"


def test_sampling_params_validate_ranges():
    with pytest.raises(pydantic.ValidationError, match="top_p"):
        SamplingParams(top_p=1.5)
    with pytest.raises(pydantic.ValidationError, match="mutually exclusive"):
        SamplingParams(json_schema={"type": "object"}, choices=["A", "B"])
