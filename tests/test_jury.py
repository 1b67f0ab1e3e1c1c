"""Juries: aggregation by majority, mean and calibrated weights; agreement between members."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from judge.core._errors import ConfigError
from judge.backends import ScriptedBackend
from judge.core._config import JobConfig
from judge.eval import run_eval
from judge.analysis._jury import JuryVerdict, aggregate, jury_alpha, member_config, member_outputs
from judge.runner import run_jury
from judge.core._labels import judge_winner
from verdict_helpers import first_token

DATA = Path(__file__).resolve().parent / "data"
PAIRS = DATA / "pairs_labelled.jsonl"
BLOCK = re.compile(r"<<<DATA-([0-9a-f]{12}) ([^>\n]+)>>>\n(.*?)\n<<<END-\1>>>", re.S)


def shown(prompt) -> dict[str, str]:
    return {name: text for _, name, text in BLOCK.findall(prompt[-2].content)}


# ----------------------------------------------------------------------------------------------
# Aggregation


def test_majority_of_pair_verdicts():
    v = aggregate("pairwise", "i", {"x": "A", "y": "A", "z": "B"}, {"x": 0.9, "y": 0.7, "z": 0.2}, {}, "majority")
    assert v.winner == "A" and v.agreement == pytest.approx(2 / 3, abs=1e-4) and v.value == pytest.approx(0.6)
    # An inconsistent member votes tie; a split at the top is a tie, never a pick.
    v = aggregate("pairwise", "i", {"x": "A", "y": "B", "z": "inconsistent"}, {}, {}, "majority")
    assert v.winner == "tie"
    v = aggregate("pairwise", "i", {"x": "A", "y": None}, {}, {}, "majority")
    assert v.winner == "A" and v.agreement == 1.0
    v = aggregate("pairwise", "i", {"x": None, "y": None}, {}, {}, "majority")
    assert v.status == "unscored" and v.winner is None


def test_mean_probability_and_weighted_votes():
    v = aggregate("pairwise", "i", {"x": "A", "y": "B"}, {"x": 0.9, "y": 0.4}, {}, "mean", tie_threshold=0.05)
    assert v.winner == "A" and v.value == pytest.approx(0.65)
    v = aggregate("pairwise", "i", {"x": "A", "y": "B"}, {"x": 0.6, "y": 0.42}, {}, "mean", tie_threshold=0.05)
    assert v.winner == "tie"
    # One reliable member outvotes two weak ones when weights say so.
    votes = {"good": "B", "weak1": "A", "weak2": "A"}
    w = {"good": 3.0, "weak1": 1.0, "weak2": 1.0}
    assert aggregate("pairwise", "i", votes, {}, w, "weighted").winner == "B"
    assert aggregate("pairwise", "i", votes, {}, w, "majority").winner == "A"  # majority ignores weights
    # Weight 0 silences a member.
    assert aggregate("pairwise", "i", votes, {}, {"good": 1, "weak1": 0, "weak2": 0}, "weighted").winner == "B"


def test_score_aggregation():
    values = {"x": 0.2, "y": 0.4, "z": 1.0, "u": None}
    assert aggregate("score", "i", {}, values, {}, "majority").value == pytest.approx(0.4)  # the median
    assert aggregate("score", "i", {}, values, {}, "mean").value == pytest.approx(1.6 / 3)
    w = {"x": 1.0, "y": 1.0, "z": 2.0}
    assert aggregate("score", "i", {}, values, w, "weighted").value == pytest.approx((0.2 + 0.4 + 2.0) / 4)
    assert aggregate("score", "i", {}, {"x": None}, {}, "mean").status == "unscored"


def test_alpha_between_members():
    agree = {m: {"1": ("A", 0.9), "2": ("B", 0.1), "3": ("tie", 0.5)} for m in ("x", "y")}
    a = jury_alpha("pairwise", agree)
    assert a["nominal_verdicts"] == 1.0 and a["interval_p_a"] == 1.0 and a["items"] == 3
    disagree = {"x": {"1": ("A", 0.9), "2": ("B", 0.1)}, "y": {"1": ("B", 0.1), "2": ("A", 0.9)}}
    assert jury_alpha("pairwise", disagree)["nominal_verdicts"] < 0
    scores = {"x": {"1": (None, 0.0), "2": (None, 0.5), "3": (None, 1.0)}, "y": {"1": (None, 0.0), "2": (None, 0.5), "3": (None, 1.0)}}
    s = jury_alpha("score", scores)
    assert s["interval_scores"] == 1.0 and s["ordinal_scores"] == 1.0


# ----------------------------------------------------------------------------------------------
# Jury jobs


def truth() -> dict[tuple[str, str], str]:
    out = {}
    for line in PAIRS.read_text().splitlines():
        r = json.loads(line)
        out[(r["response_a"], r["response_b"])] = r["label"]
    return out


def oracle(flip: bool = False) -> ScriptedBackend:
    """Right in both orders (or, with flip, wrong in both)."""
    t = truth()

    def respond(prompt, params):
        s = shown(prompt)
        a, b = s["response A"], s["response B"]
        label = t.get((a, b))
        if label is not None:
            said = judge_winner(label)
        else:  # shown swapped: the item's a is the judge's B
            said = {"A": "B", "B": "A", "tie": "tie"}[judge_winner(t[(b, a)])]
        if flip and said != "tie":
            said = "B" if said == "A" else "A"
        return first_token({said: 0.8, **{k: 0.1 for k in ("A", "B", "tie") if k != said}})

    return ScriptedBackend(respond)


def first_shown() -> ScriptedBackend:
    return ScriptedBackend(lambda prompt, params: first_token({"A": 0.8, "B": 0.15, "tie": 0.05}))


def jury_cfg(tmp_path, aggregate="majority", weights=(1.0, 1.0, 1.0)) -> JobConfig:
    return JobConfig(
        data=PAIRS,
        output=tmp_path / "out" / "j.jsonl",
        rubrics=["instruction_following"],
        jury={
            "aggregate": aggregate,
            "members": [
                {"name": "good", "weight": weights[0]},
                {"name": "biased", "weight": weights[1], "scoring": {"method": "logprob", "pairwise_policy": "strict"}},
                {"name": "contrarian", "weight": weights[2]},
            ],
        },
    )


def items_only(tmp_path) -> Path:
    p = tmp_path / "items.jsonl"
    rows = []
    for line in PAIRS.read_text().splitlines():
        r = json.loads(line)
        r.pop("label")
        rows.append(json.dumps(r))
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return p


def test_a_jury_job_writes_members_and_aggregate(tmp_path):
    cfg = jury_cfg(tmp_path).model_copy(update={"data": items_only(tmp_path)})
    backends = {"good": oracle(), "biased": first_shown(), "contrarian": oracle(flip=True)}
    summary = run_jury(cfg, backends=backends, progress=False)
    assert summary.kind == "pairwise" and summary.items == 38
    for name in backends:
        assert (member_outputs(cfg.output) / f"{name}.jsonl").exists()
        assert (member_outputs(cfg.output) / f"{name}.verdicts.jsonl").exists()
    lines = (tmp_path / "out" / "j.jury.jsonl").read_text().splitlines()
    verdicts = [JuryVerdict.model_validate_json(line) for line in lines]
    assert len(verdicts) == 38
    # good says the truth, contrarian the opposite, biased is inconsistent (votes tie): a split.
    decided = [v for v in verdicts if v.votes["good"] in ("A", "B")]
    assert decided and all(v.winner == "tie" for v in decided)
    assert summary.alpha["nominal_verdicts"] < 0.2  # members disagree
    assert json.loads((tmp_path / "out" / "j.jury.summary.json").read_text())["items"] == 38
    assert "Krippendorff's alpha" in summary.table()
    # Each verdict names the judgments it came from: both orders of the pair, per member.
    member_keys = {
        name: {j["key"]: j["item_id"] for j in map(json.loads, (member_outputs(cfg.output) / f"{name}.jsonl").open())}
        for name in backends
    }
    for v in verdicts:
        assert set(v.keys) == set(backends)
        for name, keys in v.keys.items():
            assert len(keys) == 2 and all(member_keys[name][k] == v.item_id for k in keys)


def test_a_jury_on_the_cluster_refuses_ready_backends_before_anything_runs(tmp_path):
    cfg = jury_cfg(tmp_path).model_copy(update={"data": items_only(tmp_path)})
    cfg = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"enabled": True})})
    with pytest.raises(ConfigError, match=r"cluster.enabled is true.*Ray workers"):
        run_jury(cfg, backends={"good": oracle()}, progress=False)
    assert not (tmp_path / "out").exists()


def test_eval_calibrates_jury_weights_and_the_weighted_jury_recovers(tmp_path):
    backends = {"good": oracle(), "biased": first_shown(), "contrarian": oracle(flip=True)}
    saved = tmp_path / "jury.yaml"
    report = run_eval(
        jury_cfg(tmp_path), PAIRS, tmp_path / "ev", backends=backends, progress=False, bootstrap=0,
        calibrate_=True, save_path=saved,
    )
    members = report.members
    assert members["good"]["accuracy"]["value"] == 1.0
    assert members["contrarian"]["accuracy_no_ties"]["value"] == 0.0
    w = report.calibration["jury_weights"]
    assert w["good"] > 0 and w["biased"] == 0.0 and w["contrarian"] == 0.0
    # The saved config aggregates by weight; judged again with it, the jury is as good as its best member.
    from judge.core._load import load_job_config

    cfg = load_job_config(saved, {"data": str(PAIRS), "output": str(tmp_path / "x.jsonl")})
    assert cfg.jury.aggregate == "weighted" and {m.name: m.weight for m in cfg.jury.members} == w
    again = run_eval(cfg, PAIRS, tmp_path / "ev2", backends=backends, progress=False, bootstrap=0)
    assert again.judges["jury"]["accuracy"]["value"] == 1.0
    assert again.jury is not None and again.jury.alpha["items"] == 38


def never_loaded():
    """A backend factory that fails the test if anything asks it for its model."""
    pytest.fail("a backend was created before the jury config was checked")


def test_jury_configs_are_checked_before_any_model_loads(tmp_path):
    mixed = JobConfig(
        data=PAIRS, output=tmp_path / "j.jsonl", rubrics=["instruction_following"],
        jury={"members": [{"name": "a"}, {"name": "b", "rubric": "helpfulness"}]},
    )
    # Factories, not loaded backends: creating one is loading a model, and must not happen.
    with pytest.raises(ConfigError, match="all judge pairs or all score responses"):
        run_jury(mixed, backends={"a": never_loaded, "b": never_loaded}, progress=False)
    # Members left to the configured backend: a model path that does not exist would fail with a
    # different error if anything tried to load it first.
    unloadable = mixed.model_copy(update={"judge": mixed.judge.model_copy(update={"model": str(tmp_path / "no-model")})})
    with pytest.raises(ConfigError, match="all judge pairs or all score responses"):
        run_jury(unloadable, progress=False)
    assert not (tmp_path / "j.jsonl").exists() and not list(tmp_path.glob("j.*"))
    two = JobConfig(
        data=PAIRS, output=tmp_path / "j.jsonl", rubrics=["instruction_following", "helpfulness"],
        jury={"members": [{"name": "a"}, {"name": "b"}]},
    )
    with pytest.raises(ConfigError, match="names no rubric and the job lists 2"):
        member_config(two, two.jury.members[0])
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="unique"):
        JobConfig(data=PAIRS, output=tmp_path / "j.jsonl", jury={"members": [{"name": "a"}, {"name": "a"}]})


# ----------------------------------------------------------------------------------------------
# The bundled model: two prompt variants of the same judge


@pytest.mark.model
@pytest.mark.vllm
def test_a_jury_of_rubric_variants_on_the_bundled_model(vllm_backend, tmp_path):
    rows = [
        {"id": "right", "prompt": "What is 12 + 7?", "response": "12 + 7 = 19.", "reference": "19"},
        {"id": "wrong", "prompt": "What is 12 + 7?", "response": "12 + 7 = 21.", "reference": "19"},
        {"id": "paris", "prompt": "Capital of France?", "response": "Paris.", "reference": "Paris"},
        {"id": "turtles", "prompt": "Capital of France?", "response": "I like turtles.", "reference": "Paris"},
    ]
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = JobConfig(
        data=data, output=tmp_path / "j.jsonl", rubrics=["helpfulness"],
        jury={"aggregate": "mean", "members": [
            {"name": "helpful"},
            {"name": "factual", "rubric": "factual_consistency"},
            {"name": "written", "scoring": {"method": "json"}},
        ]},
    )
    summary = run_jury(cfg, backends={m: vllm_backend for m in ("helpful", "factual", "written")}, progress=False)
    assert summary.kind == "score" and summary.items == 4
    verdicts = [json.loads(line) for line in (tmp_path / "j.jury.jsonl").read_text().splitlines()]
    for v in verdicts:
        assert v["status"] == "scored" and set(v["values"]) == {"helpful", "factual", "written"}
        vals = [x for x in v["values"].values() if x is not None]
        assert v["value"] == pytest.approx(sum(vals) / len(vals), abs=1e-5)
        assert 0.0 <= v["value"] <= 1.0
    # Alpha between members, recomputed with the reference package from the members' own values.
    import krippendorff
    import numpy as np

    members = sorted(verdicts[0]["values"])
    matrix = np.array(
        [[np.nan if v["values"][m] is None else v["values"][m] for v in sorted(verdicts, key=lambda v: v["item_id"])]
         for m in members],
        dtype=float,
    )
    alpha = summary.alpha
    assert alpha["members"] == members and alpha["items"] == 4
    for key, level in (("interval_scores", "interval"), ("ordinal_scores", "ordinal")):
        expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)
        assert alpha[key] is not None and alpha[key] == pytest.approx(expected, abs=1e-4), (key, alpha, matrix)
