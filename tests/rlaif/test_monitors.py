"""Per-round monitors, their alarms and the overrides that let a round past one.

Every measure is checked against values worked out by hand on tiny inputs (the arithmetic is in
the test); then synthetic rounds that collapse, or that inflate the judge's scores, must trip the
alarm at the round the arithmetic says, and an honest improvement must not.
"""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from judge.core._errors import ConfigError
from rlaif import (
    Alarm,
    MonitorOverride,
    MonitorThresholds,
    RoundMonitors,
    alarms_block,
    append_round_monitors,
    check_alarms,
    measure_round,
    read_monitor_overrides,
    read_round_monitors,
    record_monitor_override,
    sequence_kl,
)
from rlaif._monitor_metrics import (
    compression_ratio,
    distinct_n,
    has_repeated_line,
    has_repetition_loop,
    judge_inflation,
    kl_from_log_history,
    ks_statistic,
    refusal_rate,
    repetition_rate,
    self_bleu,
    tail_coverage,
    tokens,
    wasserstein,
)

# ----------------------------------------------------------------------------------------------
# Each measure on tiny inputs


def test_tokens_are_lowercased_words_and_punctuation():
    assert tokens("The cat, the HAT.") == ["the", "cat", ",", "the", "hat", "."]


def test_distinct_n_by_hand():
    outs = ["the cat the cat", "the dog"]
    # unigrams: the cat the cat | the dog -> 6 in all, {the, cat, dog} = 3 distinct
    assert distinct_n(outs, 1) == pytest.approx(3 / 6)
    # bigrams: (the cat) (cat the) (the cat) | (the dog) -> 4, 3 distinct; none spans two outputs
    assert distinct_n(outs, 2) == pytest.approx(3 / 4)
    # trigrams: (the cat the) (cat the cat) -> 2, 2 distinct
    assert distinct_n(outs, 3) == pytest.approx(1.0)
    assert distinct_n(["a"], 2) == 0.0  # no bigram at all
    with pytest.raises(ConfigError, match="n must be at least 1"):
        distinct_n(outs, 0)


def test_self_bleu_by_hand():
    # "a b c d" against "a b c e" (and the reverse, symmetric): precisions 3/4, 2/3, 1/2 and, for the
    # 4-grams (0 of 1 match), sacrebleu's exp smoothing 1/(2*1); equal lengths, so no brevity penalty.
    expected = (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25  # 0.5946
    assert self_bleu(["a b c d", "a b c e"]) == pytest.approx(expected, abs=1e-9)
    assert self_bleu(["same words here"] * 3) == pytest.approx(1.0)
    assert self_bleu(["alpha beta", "gamma delta"]) == 0.0  # no n-gram in common
    assert self_bleu(["only one"]) is None and self_bleu(["x y", "  "]) is None


def test_self_bleu_draws_a_seeded_subset():
    outs = [f"w{i} common phrase here {i % 3}" for i in range(30)]
    a = self_bleu(outs, max_hypotheses=5, seed=1)
    assert a == self_bleu(outs, max_hypotheses=5, seed=1)
    assert a != self_bleu(outs, max_hypotheses=None)


def test_compression_ratio_rises_with_repetition():
    varied = ["The quick brown fox jumps over the lazy dog.", "Pack my box with five dozen liquor jugs."]
    raw = "\n".join(varied).encode()
    assert compression_ratio(varied) == pytest.approx(len(raw) / len(gzip.compress(raw, compresslevel=9, mtime=0)))
    assert compression_ratio(["the same line again"] * 20) > 3 * compression_ratio(varied)
    assert compression_ratio([]) is None


def test_length_shift_by_hand():
    a, b = [1, 2, 3], [2, 4]
    # ECDFs on {1,2,3,4}: a = 1/3, 2/3, 1, 1;  b = 0, 1/2, 1/2, 1;  gaps 1/3, 1/6, 1/2, 0
    assert ks_statistic(a, b) == pytest.approx(1 / 2)
    # area between the ECDFs: 1/3 * (2-1) + 1/6 * (3-2) + 1/2 * (4-3)
    assert wasserstein(a, b) == pytest.approx(1 / 3 + 1 / 6 + 1 / 2)
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.integers(5, 80, 50), rng.integers(1, 40, 70)
    assert ks_statistic(x, y) == pytest.approx(scipy_stats.ks_2samp(x, y).statistic)
    assert wasserstein(x, y) == pytest.approx(scipy_stats.wasserstein_distance(x, y))


def test_tail_coverage_by_hand():
    refs = ["red fox jumps", "red dog sleeps"]
    # reference unigram counts: red 2, fox 1, jumps 1, dog 1, sleeps 1 -> rare (at most once): 4
    # the outputs produce {a, fox, sleeps, red}: 2 of the 4 rare ones
    assert tail_coverage(["a fox sleeps", "red red"], refs) == (pytest.approx(2 / 4), 4)
    # with max_count 2, "red" is rare too: 3 of 5
    assert tail_coverage(["a fox sleeps", "red red"], refs, max_count=2) == (pytest.approx(3 / 5), 5)
    assert tail_coverage(["x"], []) == (None, 0)


def test_repetition_by_hand():
    assert has_repetition_loop("the the the the the the")  # period 1 over 6 tokens
    assert has_repetition_loop("a b c a b c")  # period 3 over 6 tokens
    assert not has_repetition_loop("thank you thank you")  # period 2 over only 4 tokens
    assert has_repeated_line("first line here\nsomething else\nFirst line here")
    assert not has_repeated_line("-\n-\nok")  # one-token lines do not count
    outs = [
        "the the the the the the",  # loop
        "a b c a b c",  # loop
        "thank you thank you",  # neither
        "first line here\nsomething else\nfirst line here",  # repeated line
        "fine text",  # neither
    ]
    assert repetition_rate(outs) == pytest.approx(3 / 5)


def test_refusal_rate_by_hand():
    outs = ["I can\u2019t help with that.", "Sure, here it is.", "As an AI language model, I have no views."]
    assert refusal_rate(outs) == pytest.approx(2 / 3)  # the curly apostrophe reads as straight
    assert refusal_rate(outs, phrases=["here it is"]) == pytest.approx(1 / 3)


def test_sequence_kl_by_hand():
    p = [np.array([-1.0, -2.0]), np.array([-0.5])]
    q = [np.array([-1.5, -2.5]), np.array([-1.0])]
    # k1: sequence sums of p - q: 0.5 + 0.5 = 1.0 and 0.5; mean 0.75
    assert sequence_kl(p, q) == pytest.approx(0.75)
    # k3: r = q - p = -0.5 at every token; exp(-0.5) + 0.5 - 1 = 0.10653 per token; sums 2x and 1x
    per_token = math.exp(-0.5) + 0.5 - 1
    assert sequence_kl(p, q, estimator="k3") == pytest.approx((2 * per_token + per_token) / 2)
    # the same as padded 2-D arrays with a mask
    pp, qq = np.array([[-1.0, -2.0], [-0.5, 0.0]]), np.array([[-1.5, -2.5], [-1.0, -9.0]])
    assert sequence_kl(pp, qq, mask=[[1, 1], [1, 0]]) == pytest.approx(0.75)
    with pytest.raises(ConfigError, match="sequence 1"):
        sequence_kl(p, [q[0], np.array([-1.0, -1.0])])
    with pytest.raises(ConfigError, match="estimator"):
        sequence_kl(p, q, estimator="k2")  # type: ignore[arg-type]


def test_kl_from_trl_log_history():
    history = [{"loss": 1.0, "kl": 0.01}, {"objective/kl": 0.2, "step": 2}, {"loss": 0.5}]
    assert kl_from_log_history(history) == (0.2, "objective/kl")  # the last entry with a KL
    assert kl_from_log_history(history, key="kl") == (0.01, "kl")
    assert kl_from_log_history([{"loss": 1.0}]) is None


def test_judge_inflation_by_hand():
    # judge +0.20, canary and audit flat: nothing confirms the gain
    assert judge_inflation((0.5, 0.7), (0.8, 0.8), (0.5, 0.5)) == (pytest.approx(0.2), True)
    # judge +0.20, audit +0.15, canary +0.05: 0.20 - 0.15 left unconfirmed, and humans saw the rise
    assert judge_inflation((0.5, 0.7), (0.8, 0.85), (0.5, 0.65)) == (pytest.approx(0.05), False)
    # a falling judge is no inflation
    assert judge_inflation((0.7, 0.6), (0.8, 0.8), None) == (pytest.approx(-0.1), False)


# ----------------------------------------------------------------------------------------------
# measure_round


def test_measure_round_against_round0_and_history():
    r0_out = ["one two three", "four five six seven eight"]  # lengths 3 and 5
    r0 = measure_round(r0_out, ["one two", "nine ten"], r0_out, judge_mean=0.5, canary_agreement=0.8, audit_estimate=0.4)
    assert r0.round == 0 and r0.mean_length_ratio == 1.0 and r0.length_ks == 0.0 and r0.judge_inflation is None
    out = ["one two three four five six seven"]  # length 7
    r1 = measure_round(out, ["one two", "nine ten"], r0_out, previous=[r0], judge_mean=0.6, canary_agreement=0.8,
                       audit_estimate=0.4, kl=0.12, synthetic_share=0.75)
    assert r1.round == 1 and r1.n_outputs == 1 and r1.n_round0 == 2
    assert r1.mean_length == 7 and r1.mean_length_ratio == pytest.approx(7 / 4)
    # ECDFs on {3,5,7}: round 1 = 0,0,1; round 0 = 1/2,1,1 -> KS 1; W = 1/2*2 + 1*2 = 3
    assert r1.length_ks == pytest.approx(1.0) and r1.length_wasserstein == pytest.approx(3.0)
    # rare reference unigrams: one, two, nine, ten; round 1 says one and two
    assert r1.tail_coverage == pytest.approx(0.5) and r1.n_rare_ngrams == 4
    assert (r1.kl, r1.kl_source, r1.synthetic_share) == (0.12, "given", 0.75)
    assert r1.judge_inflation == pytest.approx(0.1) and r1.judge_inflated
    assert measure_round(out, [], previous=r1).round == 2


def test_measure_round_kl_inputs():
    kw = dict(policy_logprobs=[[-1.0, -2.0]], reference_logprobs=[[-1.5, -2.5]])
    r = measure_round(["a b"], [], **kw)
    assert (r.kl, r.kl_source) == (pytest.approx(1.0), "logprobs:k1")
    r = measure_round(["a b"], [], trl_log_history=[{"objective/kl": 3.5}])
    assert (r.kl, r.kl_source) == (3.5, "trl:objective/kl")
    with pytest.raises(ConfigError, match="one way"):
        measure_round(["a b"], [], kl=0.1, **kw)
    with pytest.raises(ConfigError, match="synthetic_share must be in"):
        measure_round(["a b"], [], synthetic_share=1.5)


def test_monitors_file_keeps_the_last_record_of_each_round(tmp_path):
    path = tmp_path / "monitors.jsonl"
    first = measure_round(["a b c"], [], round=0)
    append_round_monitors(path, first)
    append_round_monitors(path, measure_round(["a b c d"], [], round=1))
    rerun = measure_round(["x y"], [], round=1)
    append_round_monitors(path, rerun)
    with path.open("a") as fh:  # a crash mid-write
        fh.write('{"round": 2, "n_out')
    got = read_round_monitors(path)
    assert [r.round for r in got] == [0, 1] and got[1].mean_length == 2
    append_round_monitors(path, measure_round(["z"], [], round=2))  # the torn line is cut off first
    assert [json.loads(line)["round"] for line in path.read_text().splitlines()] == [0, 1, 1, 2]


# ----------------------------------------------------------------------------------------------
# Alarms


def collapsing_rounds(n_rounds: int = 6, n_prompts: int = 20, width: int = 12) -> list[list[str]]:
    """Round k: 4k of the 20 outputs are one same sentence; the others share no word with anything."""
    same = " ".join(f"s{j}" for j in range(width))
    rounds = []
    for k in range(n_rounds):
        collapsed = min(n_prompts, 4 * k)
        unique = [" ".join(f"w{k}x{i}x{j}" for j in range(width)) for i in range(n_prompts - collapsed)]
        rounds.append(unique + [same] * collapsed)
    return rounds


def test_a_collapsing_sequence_trips_the_diversity_alarm_at_round_3():
    rounds = collapsing_rounds()
    refs = [rounds[0][i] for i in range(10)]
    thresholds = MonitorThresholds.model_validate({"distinct_2": 0.5})
    history: list[RoundMonitors] = []
    fired = []
    for outputs in rounds:
        r = measure_round(outputs, refs, rounds[0], previous=history)
        history.append(r)
        if check_alarms(r, thresholds):
            fired.append(r.round)
    # Each output has 11 bigrams, 220 in all. Round k (k >= 1) has 20 - 4k unique outputs plus one
    # distinct copy of the shared sentence: distinct-2 = ((20 - 4k) * 11 + 11) / 220 = (21 - 4k) / 20.
    assert [r.distinct_2 for r in history] == pytest.approx([1.0, 17 / 20, 13 / 20, 9 / 20, 5 / 20, 1 / 20])
    assert fired[0] == 3 and fired == [3, 4, 5]  # 0.45 is the first below 0.5
    (alarm,) = check_alarms(history[3], thresholds)
    assert alarm.message == "round 3: distinct-2 0.45 is below the alarm threshold 0.50"
    assert (alarm.monitor, alarm.value, alarm.threshold, alarm.direction) == ("distinct_2", 0.45, 0.5, "below")
    # the other collapse signals move the same way
    bleu = [r.self_bleu for r in history]
    assert all(a < b for a, b in zip(bleu, bleu[1:]))
    assert history[0].tail_coverage == 1.0 and history[-1].tail_coverage == 0.0


def run_signals(judge, canary, audit) -> list[RoundMonitors]:
    history: list[RoundMonitors] = []
    for j, c, a in zip(judge, canary, audit):
        history.append(measure_round(["a fixed output"], [], previous=history, judge_mean=j, canary_agreement=c,
                                     audit_estimate=a))
    return history


def test_judge_hacking_trips_the_inflation_alarm_and_honest_improvement_does_not():
    thresholds = MonitorThresholds.model_validate({"judge_inflation": 0.05})
    judge = [0.50, 0.56, 0.63, 0.70]
    hacked = run_signals(judge, [0.80] * 4, [0.50] * 4)
    # vs round 0: gains 0.06, 0.13, 0.20 with nothing confirming them; the first above 0.05 is round 1
    assert [r.judge_inflation for r in hacked[1:]] == pytest.approx([0.06, 0.13, 0.20])
    assert [r.judge_inflated for r in hacked] == [False, True, True, True]
    assert [bool(check_alarms(r, thresholds)) for r in hacked] == [False, True, True, True]
    honest = run_signals(judge, [0.80, 0.82, 0.84, 0.86], [0.50, 0.56, 0.62, 0.69])
    # round 3 vs round 0: 0.20 - max(0.06, 0.19) = 0.01; vs round 2: 0.07 - max(0.02, 0.07) = 0
    assert honest[3].judge_inflation == pytest.approx(0.01)
    assert not any(r.judge_inflated for r in honest)
    assert not any(check_alarms(r, thresholds) for r in honest)


def test_thresholds_directions_and_errors():
    t = MonitorThresholds.from_mapping({"self_bleu": 0.8, "mean_length_ratio": {"below": 0.5, "above": 2.0}})
    assert (t.self_bleu.above, t.self_bleu.below) == (0.8, None)
    r = measure_round(["x y z"] * 4, [], ["x"] * 4)  # self-BLEU 1.0, 3x as long as round 0
    msgs = [a.message for a in check_alarms(r, t)]
    assert msgs == [
        "round 0: self-BLEU 1.00 is above the alarm threshold 0.80",
        "round 0: mean length ratio to round 0 3.00 is above the alarm threshold 2.00",
    ]
    with pytest.raises(ConfigError) as info:
        MonitorThresholds.from_mapping({"distinct_9": 0.1, "mean_length_ratio": 2, "kl": {"below": 3, "above": 1}},
                                       source="configs/rlaif_loop.yaml monitors")
    msg = str(info.value)
    assert "monitors.distinct_9: unknown monitor; allowed: distinct_1" in msg and "(given: 0.1)" in msg
    assert "mean_length_ratio: mean_length_ratio may drift either way" in msg and "(given: 2)" in msg
    assert "kl: below (3.0) must not exceed above (1.0)" in msg


def test_an_override_lets_the_alarm_pass_and_is_recorded(tmp_path):
    rounds = collapsing_rounds()
    r3 = measure_round(rounds[3], [], round=3)
    thresholds = MonitorThresholds.model_validate({"distinct_2": 0.5})
    alarms = check_alarms(r3, thresholds)
    block = alarms_block(alarms)
    assert block is not None and "round 3: distinct-2 0.45 is below the alarm threshold 0.50" in block
    assert "distinct_2 (round 3)" in block

    path = tmp_path / "monitor_overrides.jsonl"
    record_monitor_override(path, MonitorOverride(reviewer="ana", reason="eval prompts are templated", monitor="tail_coverage", round=3))
    record_monitor_override(path, MonitorOverride(reviewer="ana", reason="a round-2 call", monitor="distinct_2", round=2))
    assert alarms_block(check_alarms(r3, thresholds, read_monitor_overrides(path))) is not None  # other monitor / round

    record_monitor_override(path, MonitorOverride(reviewer="ana", reason="collapse is the intended style", monitor="distinct_2", round=3))
    stored = read_monitor_overrides(path)
    assert [(o.reviewer, o.monitor, o.round) for o in stored] == [("ana", "tail_coverage", 3), ("ana", "distinct_2", 2),
                                                                  ("ana", "distinct_2", 3)]
    assert stored[2].reason == "collapse is the intended style" and stored[2].created_at
    after = check_alarms(r3, thresholds, stored)
    assert len(after) == 1 and after[0].overridden and after[0].overrides == [stored[2]]  # still listed
    assert alarms_block(after) is None
    assert Alarm.model_validate_json(after[0].model_dump_json()) == after[0]


def test_an_override_names_a_person_and_a_reason():
    with pytest.raises(ValueError, match="names a person and a reason"):
        MonitorOverride(reviewer=" ", reason="x", monitor="kl", round=1)
    with pytest.raises(ValueError, match="unknown monitor 'klx'"):
        MonitorOverride(reviewer="ana", reason="x", monitor="klx", round=1)


def test_a_corrupt_overrides_file_names_the_line(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text('{"reviewer": "ana", "reason": "r", "monitor": "kl", "round": 1}\n{"reviewer": "ana"}\n')
    with pytest.raises(ConfigError, match=r"o\.jsonl:2: reason: Field required"):
        read_monitor_overrides(path)


def test_a_last_override_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text('{"reviewer": "ana", "reason": "r", "monitor": "kl", "round": 1}')  # edited by hand
    assert [o.monitor for o in read_monitor_overrides(path)] == ["kl"]
    record_monitor_override(path, MonitorOverride(reviewer="bo", reason="r2", monitor="self_bleu", round=1))
    assert [o.reviewer for o in read_monitor_overrides(path)] == ["ana", "bo"]
