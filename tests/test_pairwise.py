"""Pairwise verdicts in both orders: policies, the order mapping, seeded orders, the verdicts file
and bias diagnostics; scripted judges for the logic, the bundled model end to end."""

from __future__ import annotations

import json
import re

import pytest

from judge.backends import ScriptedBackend
from judge.core._config import JobConfig
from judge.runner._engine import run_job
from judge.core._records import Judgment, JudgeInfo, RubricRef, SamplingParams
from judge.scoring import order_for
from judge.analysis._verdicts import combine_orders, pair_verdicts, read_pair_verdicts, verdicts_path
from verdict_helpers import first_token

BLOCK = re.compile(r"<<<DATA-([0-9a-f]{12}) ([^>\n]+)>>>\n(.*?)\n<<<END-\1>>>", re.S)
INFO = JudgeInfo(model="scripted", model_hash="0" * 64, backend="scripted")
REF = RubricRef(id="instruction_following", version=1, hash="h")


def shown(prompt) -> dict[str, str]:
    """The texts a pairwise prompt shows, by block name (response A / response B / user prompt)."""
    return {name: text for _, name, text in BLOCK.findall(prompt[-1].content if prompt[-1].role == "user" else prompt[-2].content)}


def pj(order, winner, p_a=None, status="scored", error=None, item="p1", source=None) -> Judgment:
    extra = {}
    if p_a is not None:
        extra["p_a"] = p_a
    if source:
        extra["p_source"] = source
    return Judgment(
        key=f"{item}-{order}",
        item_id=item,
        rubric=REF,
        judge=INFO,
        sampling=SamplingParams(),
        prompt_hash="ph",
        kind="pairwise",
        order=order,
        status=status,
        winner=winner if status == "scored" else None,
        raw_output="{}",
        error=error,
        extra=extra,
    )


# ----------------------------------------------------------------------------------------------
# Policies


@pytest.mark.parametrize(
    "ab, ba, winner, consistent",
    [
        ("A", "A", "A", True),
        ("B", "B", "B", True),
        ("tie", "tie", "tie", True),
        ("A", "B", "inconsistent", False),
        ("B", "A", "inconsistent", False),
        ("A", "tie", "tie", False),
        ("tie", "B", "tie", False),
    ],
)
def test_strict_names_a_winner_only_when_both_orders_agree(ab, ba, winner, consistent):
    v = combine_orders([pj("AB", ab), pj("BA", ba)], "strict")
    assert v.status == "scored" and v.winner == winner and v.consistent is consistent
    assert v.verdicts == {"AB": ab, "BA": ba} and v.orders == ["AB", "BA"]


@pytest.mark.parametrize(
    "p_ab, p_ba, threshold, winner",
    [
        (0.9, 0.7, 0.05, "A"),  # mean 0.8
        (0.2, 0.3, 0.05, "B"),  # mean 0.25
        (0.8, 0.3, 0.05, "A"),  # mean 0.55: outside a 0.05 band
        (0.8, 0.3, 0.05000001, "tie"),  # the band is inclusive
        (0.8, 0.3, 0.1, "tie"),
        (0.6, 0.4, 0.0, "tie"),  # exactly 0.5 is never a pick
    ],
)
def test_average_probability_decides_on_the_mean(p_ab, p_ba, threshold, winner):
    v = combine_orders(
        [pj("AB", "A", p_ab), pj("BA", "B", p_ba)], "average-probability", tie_threshold=threshold
    )
    assert v.status == "scored" and v.winner == winner
    assert v.p_a_mean == pytest.approx((p_ab + p_ba) / 2) and v.p_source == "logprobs"
    assert v.tie_threshold == threshold and v.consistent is False


def test_an_unscored_order_makes_the_pair_unscored_never_a_pick():
    for policy in ("strict", "average-probability"):
        v = combine_orders(
            [pj("AB", "A", 0.9), pj("BA", None, status="unscored", error="no JSON object in the output")], policy
        )
        assert v.status == "unscored" and v.winner is None
        assert "order BA: no JSON object in the output" in v.error
        assert v.verdicts == {"AB": "A", "BA": None} and v.p_a == {"AB": 0.9, "BA": None}


def test_average_probability_without_probabilities_is_unscored():
    v = combine_orders([pj("AB", "A"), pj("BA", "A")], "average-probability")
    assert v.status == "unscored" and "needs P(A wins)" in v.error


def test_written_verdicts_stand_in_for_probabilities_and_say_so():
    v = combine_orders([pj("AB", "A", 1.0, source="verdict"), pj("BA", "tie", 0.5, source="verdict")], "average-probability")
    assert v.p_source == "verdicts" and v.p_a_mean == 0.75 and v.winner == "A"


def test_a_single_order_is_its_own_verdict():
    v = combine_orders([pj("BA", "B", 0.2)], "strict")
    assert v.winner == "B" and v.consistent is None and v.orders == ["BA"]


def test_combine_refuses_mixed_input():
    with pytest.raises(ValueError, match="different pairs"):
        combine_orders([pj("AB", "A"), pj("BA", "A", item="p2")])
    with pytest.raises(ValueError, match="given twice"):
        combine_orders([pj("AB", "A"), pj("AB", "B")])
    with pytest.raises(ValueError, match="policy must be"):
        combine_orders([pj("AB", "A"), pj("BA", "A")], "coin-flip")  # type: ignore[arg-type]


def test_pair_verdicts_groups_by_pair_and_keeps_the_latest_order():
    js = [pj("AB", "A"), pj("BA", "B"), pj("AB", "B", item="p2"), pj("BA", "B", item="p2"), pj("BA", "A")]
    vs = {v.item_id: v for v in pair_verdicts(js, "strict")}
    assert vs["p1"].verdicts == {"AB": "A", "BA": "A"} and vs["p1"].winner == "A"  # the later BA counts
    assert vs["p2"].winner == "B"


# ----------------------------------------------------------------------------------------------
# Jobs with scripted judges


def pairs_file(tmp_path, rows=None):
    rows = rows or [
        {"id": "arith", "prompt": "What is 3 * 4?", "response_a": "3 * 4 = 12.", "response_b": "3 * 4 = 7, clearly."},
        {"id": "topic", "prompt": "Name a colour.", "response_a": "I like trains a lot.", "response_b": "Blue."},
        {"id": "same", "prompt": "What is 5 + 5?", "response_a": "10.", "response_b": "10!"},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def first_shown_judge(p_first: float = 0.8) -> ScriptedBackend:
    """Always prefers whatever is shown first: pure position bias."""
    return ScriptedBackend(lambda prompt, params: first_token({"A": p_first, "B": 1 - p_first - 0.05, "tie": 0.05}))


def correct_judge() -> ScriptedBackend:
    """Prefers the response that contains '12' or 'Blue': right in both orders."""

    def respond(prompt, params):
        texts = shown(prompt)
        good_a = any(k in texts["response A"] for k in ("12", "Blue"))
        good_b = any(k in texts["response B"] for k in ("12", "Blue"))
        if good_a == good_b:
            return first_token({"tie": 0.6, "A": 0.2, "B": 0.2})
        return first_token({"A": 0.9, "B": 0.05, "tie": 0.05} if good_a else {"B": 0.9, "A": 0.05, "tie": 0.05})

    return ScriptedBackend(respond)


def job(tmp_path, **kw) -> JobConfig:
    return JobConfig(data=pairs_file(tmp_path), output=tmp_path / "out" / "j.jsonl", rubrics=["instruction_following"], **kw)


def test_both_orders_are_judged_and_written_beside_the_judgments(tmp_path):
    backend = correct_judge()
    summary = run_job(job(tmp_path), backend=backend, progress=False)
    assert summary.judgments == 6
    orders = [json.loads(line)["order"] for line in (tmp_path / "out" / "j.jsonl").read_text().splitlines()]
    assert orders.count("AB") == 3 and orders.count("BA") == 3
    path = verdicts_path(tmp_path / "out" / "j.jsonl")
    assert path == tmp_path / "out" / "j.verdicts.jsonl"
    vs = {v.item_id: v for v in read_pair_verdicts(path)}
    assert vs["arith"].winner == "A" and vs["topic"].winner == "B" and vs["same"].winner == "tie"
    assert all(v.consistent for v in vs.values())
    assert vs["arith"].p_a == pytest.approx({"AB": 0.925, "BA": 0.925})  # P(A) + half of P(tie)
    assert not list((tmp_path / "out").glob("*.tmp*"))  # written by rename
    pairs = summary.rubrics["instruction_following"].pairs.model_dump()
    assert pairs["n"] == 3 and pairs["winners"] == {"A": 1, "B": 1, "tie": 1}
    assert "pairs 3 (strict)" in summary.table()


def test_a_position_biased_judge_is_caught(tmp_path):
    summary = run_job(job(tmp_path), backend=first_shown_judge(), progress=False)
    vs = read_pair_verdicts(verdicts_path(tmp_path / "out" / "j.jsonl"))
    assert {v.winner for v in vs} == {"inconsistent"}  # strict never turns a flip into a win
    pos = summary.rubrics["instruction_following"].bias["position"]
    assert pos["first_shown_win_rate"] == 1.0 and pos["n_verdicts"] == 6
    assert pos["swap_inconsistency_rate"] == 1.0 and pos["mean_p_first_shown"] == pytest.approx(0.825)
    assert "first shown wins 100.0% of 6" in summary.table()


def test_average_probability_cancels_a_pure_position_bias(tmp_path):
    c = job(tmp_path, scoring={"pairwise_policy": "average-probability", "tie_threshold": 0.05})
    run_job(c, backend=first_shown_judge(), progress=False)
    vs = read_pair_verdicts(verdicts_path(c.output))
    assert {v.winner for v in vs} == {"tie"} and all(v.p_a_mean == pytest.approx(0.5) for v in vs)


def test_length_bias_counts_wins_of_the_longer_response(tmp_path):
    def longer(prompt, params):
        t = shown(prompt)
        return first_token({"A": 0.9, "B": 0.1} if len(t["response A"]) > len(t["response B"]) else {"A": 0.1, "B": 0.9})

    summary = run_job(job(tmp_path), backend=ScriptedBackend(longer), progress=False)
    length = summary.rubrics["instruction_following"].bias["length"]
    assert length == {"n_pairs": 2, "longer_win_rate": 1.0}  # "10." and "10!" are the same length


def test_self_preference_when_the_judge_wrote_a_response(tmp_path):
    rows = [
        {"id": f"p{i}", "prompt": "q", "response_a": f"mine {i}", "response_b": f"theirs {i}",
         "meta": {"generator_a": "scripted", "generator_b": "other-model"}}
        for i in range(4)
    ]
    c = JobConfig(data=pairs_file(tmp_path, rows), output=tmp_path / "j.jsonl", rubrics=["instruction_following"])
    # The scripted judge's model name is "scripted": it always picks its own text.
    pick_mine = ScriptedBackend(
        lambda prompt, params: first_token({"A": 0.9, "B": 0.1} if "mine" in shown(prompt)["response A"] else {"A": 0.1, "B": 0.9})
    )
    summary = run_job(c, backend=pick_mine, progress=False)
    selfp = summary.rubrics["instruction_following"].bias["self_preference"]
    assert selfp == {"n": 4, "own_win_rate": 1.0}
    assert "own responses win 100.0% of 4 pairs" in summary.table()


def test_single_order_jobs_draw_a_seeded_recorded_order(tmp_path):
    rows = [{"id": f"p{i}", "prompt": "q", "response_a": f"a{i}", "response_b": f"b{i}"} for i in range(40)]
    c = JobConfig(
        data=pairs_file(tmp_path, rows), output=tmp_path / "j.jsonl", rubrics=["instruction_following"],
        pairwise_orders="random", sampling={"seed": 3},
    )
    backend = correct_judge()
    run_job(c, backend=backend, progress=False)
    judgments = [json.loads(line) for line in c.output.read_text().splitlines()]
    assert len(judgments) == 40
    got = {j["item_id"]: j["order"] for j in judgments}
    assert got == {f"p{i}": order_for(f"p{i}", 3) for i in range(40)}
    assert 10 < sum(o == "BA" for o in got.values()) < 30  # both orders occur
    assert got != {f"p{i}": order_for(f"p{i}", 4) for i in range(40)}  # the seed matters
    vs = read_pair_verdicts(verdicts_path(c.output))
    assert all(v.order_seed == 3 and v.orders == [got[v.item_id]] and v.consistent is None for v in vs)
    # The responses really were swapped for BA items.
    first = {shown(prompt)["response A"][1:]: shown(prompt)["response A"][0] for prompt, _ in backend.calls}
    assert first == {str(i): ("a" if got[f"p{i}"] == "AB" else "b") for i in range(40)}


def test_an_unreadable_order_never_becomes_a_winner(tmp_path):
    def flaky(prompt, params):
        if shown(prompt)["response A"].startswith("3 * 4 = 7"):  # the arith pair, order BA
            return first_token({"\n": 1.0})  # constraint ignored: no verdict token
        return first_token({"A": 0.7, "B": 0.2, "tie": 0.1})

    run_job(job(tmp_path), backend=ScriptedBackend(flaky), progress=False)
    vs = {v.item_id: v for v in read_pair_verdicts(verdicts_path(tmp_path / "out" / "j.jsonl"))}
    assert vs["arith"].status == "unscored" and vs["arith"].winner is None and "order BA" in vs["arith"].error
    assert vs["arith"].verdicts["AB"] == "A" and vs["arith"].verdicts["BA"] is None


# ----------------------------------------------------------------------------------------------
# The bundled model


@pytest.mark.model
@pytest.mark.vllm
def test_both_orders_on_the_bundled_model(vllm_backend, tmp_path):
    rows = [json.loads(line) for line in pairs_file(tmp_path).read_text().splitlines()]
    for r in rows:  # response A was written by the judge's own model: self-preference is measured
        r["meta"] = {"generator_a": "SmolLM2-135M-Instruct", "generator_b": "someone-else"}
    c = job(tmp_path).model_copy(update={"data": pairs_file(tmp_path, rows)})
    summary = run_job(c, backend=vllm_backend, progress=False)
    assert summary.judgments == 6 and summary.unscored == 0
    vs = read_pair_verdicts(verdicts_path(c.output))
    assert len(vs) == 3
    for v in vs:
        assert v.status == "scored" and v.orders == ["AB", "BA"] and v.p_source == "logprobs"
        assert set(v.verdicts.values()) <= {"A", "B", "tie"}
        assert v.consistent == (v.verdicts["AB"] == v.verdicts["BA"])
        assert v.winner in ("A", "B", "tie", "inconsistent")
        if v.winner in ("A", "B"):
            assert v.verdicts["AB"] == v.verdicts["BA"] == v.winner
        for order in ("AB", "BA"):
            assert 0.0 <= v.p_a[order] <= 1.0
        assert v.p_a_mean == pytest.approx((v.p_a["AB"] + v.p_a["BA"]) / 2, abs=1e-6)
    # Each order's judgment reports the item's terms: its P(A wins) is its shown-A mass in AB and
    # its shown-B mass in BA (plus half the tie mass either way).
    for line in c.output.read_text().splitlines():
        j = json.loads(line)
        probs = j["extra"]["probs"]
        assert j["extra"]["p_a"] == pytest.approx(probs["A"] + 0.5 * probs.get("tie", 0.0), abs=1e-5)
    bias = summary.rubrics["instruction_following"].bias
    assert bias["position"]["n_pairs_both_orders"] == 3 and 0.0 <= bias["position"]["mean_p_first_shown"] <= 1.0
    decided = sum(1 for v in vs if v.winner in ("A", "B", "tie"))
    assert bias["self_preference"]["n"] == decided
    assert bias["length"]["n_pairs"] <= 3
