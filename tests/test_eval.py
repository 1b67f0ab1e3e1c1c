"""`judgeloop eval`: labelled sets, agreement metrics, calibration and the saved judge config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from judge.core._errors import ConfigError, DataError
from judge.backends import ScriptedBackend
from judge.cli import main
from judge.core._config import JobConfig
from judge.core._load import load_job_config
from judge.eval import (
    EvalReport,
    eval_table,
    fit_tie_threshold,
    pairwise_metrics,
    pointwise_metrics,
    read_labelled,
    run_eval,
)
from judge.core._labels import human_label, judge_winner
from verdict_helpers import first_token, scores

DATA = Path(__file__).resolve().parent / "data"
PAIRS = DATA / "pairs_labelled.jsonl"
POINTS = DATA / "points_labelled.jsonl"
BLOCK = re.compile(r"<<<DATA-([0-9a-f]{12}) ([^>\n]+)>>>\n(.*?)\n<<<END-\1>>>", re.S)


def shown(prompt) -> dict[str, str]:
    return {name: text for _, name, text in BLOCK.findall(prompt[-2].content if prompt[-1].role == "assistant" else prompt[-1].content)}


def strict_json(path: Path) -> dict:
    """A JSON file parsed the way other languages' parsers read it: NaN or Infinity is an error."""

    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def write(tmp_path, rows, name="set.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return p


# ----------------------------------------------------------------------------------------------
# Labelled sets


def test_the_shipped_sets_are_valid_and_balanced():
    kind, rows, rejects = read_labelled(PAIRS)
    assert kind == "pairwise" and not rejects and len(rows) >= 30
    labels = [r.label for r in rows]
    assert labels.count("a") == labels.count("b") and labels.count("tie") >= 3
    assert {r.meta["category"] for r in rows} >= {"arithmetic", "factual", "on_topic", "refusal", "format"}
    kind, rows, rejects = read_labelled(POINTS)
    assert kind == "pointwise" and not rejects and len(rows) >= 30
    assert all(r.scale == (1, 5) and r.reference for r in rows)


def test_bad_rows_are_rejected_with_their_line(tmp_path):
    path = write(
        tmp_path,
        [
            {"id": "1", "prompt": "q", "response_a": "a", "response_b": "b", "label": "a"},
            {"id": "2", "prompt": "q", "response_a": "a", "response_b": "b", "label": "A"},
            {"id": "1", "prompt": "q", "response_a": "a", "response_b": "b", "label": "b"},
            {"id": "4", "prompt": "q", "response": "r", "human_score": 3, "scale": [1, 5]},
            "{not json",
            {"id": "6", "prompt": "q", "response_a": "a", "response_b": "b", "label": "tie", "extra": 1},
        ],
    )
    kind, rows, rejects = read_labelled(path)
    assert kind == "pairwise" and [r.id for r in rows] == ["1", "6"]
    assert rows[1].meta == {"extra": 1}  # a column the format does not name is kept, not a reject
    errors = {r["line"]: r["error"] for r in rejects}
    assert set(errors) == {2, 3, 4, 5}
    assert "label 'A'" in errors[2] and "duplicate id '1'" in errors[3] and "pointwise row in a pairwise set" in errors[4]


def test_pointwise_rows_are_checked_against_their_scale(tmp_path):
    path = write(tmp_path, [{"id": "1", "prompt": "q", "response": "r", "human_score": 7, "scale": [1, 5]}])
    with pytest.raises(DataError, match="no valid labelled row"):
        read_labelled(path)
    mixed = write(
        tmp_path,
        [
            {"id": "1", "prompt": "q", "response": "r", "human_score": 3, "scale": [1, 5]},
            {"id": "2", "prompt": "q", "response": "r", "human_score": 3, "scale": [1, 10]},
        ],
        "mixed.jsonl",
    )
    with pytest.raises(DataError, match="several scales"):
        read_labelled(mixed)


# ----------------------------------------------------------------------------------------------
# Metrics, hand-computed


def test_pairwise_metrics_hand_computed():
    labels = ["a", "a", "b", "b", "tie", "a"]
    preds = ["a", "b", "b", "tie", "tie", "inconsistent"]
    m = pairwise_metrics(labels, preds, consistent=[True, True, True, False, True, False], reps=0)
    assert m["accuracy"]["value"] == pytest.approx(3 / 6)
    assert m["accuracy_no_ties"]["value"] == pytest.approx(2 / 5)  # a judge tie or inconsistent is wrong
    assert m["decisive_accuracy"]["value"] == pytest.approx(2 / 3, abs=1e-4) and m["n_decisive"] == 3
    assert m["confusion"]["matrix"] == [[1, 1, 0, 1, 0], [0, 1, 1, 0, 0], [0, 0, 1, 0, 0]]
    # kappa over a/b/tie with inconsistent as tie: observed 3/6; chance from marginals
    # humans (3, 2, 1), judge (1, 2, 3): (3*1 + 2*2 + 1*3) / 36 = 10/36.
    assert m["kappa"]["value"] == pytest.approx((3 / 6 - 10 / 36) / (1 - 10 / 36), abs=1e-4)
    assert m["swap_consistency"] == pytest.approx(4 / 6, abs=1e-4) and m["n_both_orders"] == 6
    assert m["accuracy"]["ci95"] == [None, None]


def test_pairwise_length_bias_and_subsets():
    labels, preds = ["a", "b", "a", "b"], ["a", "a", "a", "a"]
    m = pairwise_metrics(
        labels, preds, len_a=[10, 10, 1, 5], len_b=[1, 1, 10, 5],
        metas=[{"cat": "x"}, {"cat": "x"}, {"cat": "y"}, {"cat": "y", "list": [1]}], reps=0,
    )
    # Unequal pairs: 3. Judge picks a each time: longer in pairs 1 and 2, shorter in pair 3.
    assert m["length"]["judge_longer_win_rate"] == pytest.approx(2 / 3, abs=1e-4) and m["length"]["n_judge"] == 3
    assert m["length"]["human_longer_win_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert set(m["subsets"]) == {"cat"}  # non-scalar meta is not a subset key
    assert m["subsets"]["cat"]["x"] == {"n": 2, "accuracy": 0.5, "accuracy_no_ties": 0.5, "kappa": 0.0}


def test_pointwise_metrics_hand_computed():
    human = [1, 2, 3, 4, 5]
    pred = [1.2, 2.6, 2.9, None, 4.4]
    m = pointwise_metrics(human, pred, (1, 5), lengths=[5, 4, 3, 2, 1], reps=0)
    assert m["scored"] == 4 and m["coverage"] == pytest.approx(0.8)
    # Rounded predictions 1, 3, 3, -, 4: exact hits 1 and 3 (of 5; unscored counts as a miss).
    assert m["accuracy"]["value"] == pytest.approx(2 / 5)
    assert m["within_one"]["value"] == pytest.approx(4 / 5)
    assert m["mae"]["value"] == pytest.approx((0.2 + 0.6 + 0.1 + 0.6) / 4)
    assert m["spearman"]["value"] == pytest.approx(1.0)
    assert m["kendall"]["value"] == pytest.approx(1.0)
    # Quadratic kappa of (1,2,3,5) vs (1,3,3,4) on levels 1..5, by the definition.
    import numpy as np

    o = np.zeros((5, 5))
    for h, p in [(1, 1), (2, 3), (3, 3), (5, 4)]:
        o[h - 1, p - 1] += 1
    e = np.outer(o.sum(1), o.sum(0)) / 4
    w = (np.arange(5)[:, None] - np.arange(5)[None, :]) ** 2
    assert m["kappa_quadratic"]["value"] == pytest.approx(1 - (w * o).sum() / (w * e).sum(), abs=1e-4)
    assert m["confusion"]["matrix"][3] == [0, 0, 0, 0, 0, 1]  # human 4 was unscored
    assert m["length"]["human_score_length_spearman"] == pytest.approx(-1.0)


def test_fit_tie_threshold_finds_the_band_that_matches_humans():
    p = [0.9, 0.8, 0.52, 0.47, 0.2, 0.1, None]
    labels = ["a", "a", "tie", "tie", "b", "b", "a"]
    fit = fit_tie_threshold(p, labels)
    assert 0.03 <= fit["tie_threshold"] < 0.2
    assert fit["accuracy"] == pytest.approx(6 / 7, abs=1e-4)
    # Without human ties the narrowest band wins.
    assert fit_tie_threshold([0.9, 0.2], ["a", "b"])["tie_threshold"] == 0.0


def test_the_two_label_vocabularies_map_one_to_one():
    assert [judge_winner(x) for x in ("a", "b", "tie")] == ["A", "B", "tie"]
    assert [human_label(judge_winner(x)) for x in ("a", "b", "tie")] == ["a", "b", "tie"]
    with pytest.raises(ValueError, match="human label must be one of"):
        judge_winner("A")
    with pytest.raises(ValueError, match="judge winner must be one of"):
        human_label("inconsistent")


def test_undefined_resamples_are_counted_and_shown(tmp_path):
    # Two pairs: a resample that draws one pair twice holds one human category, where Cohen's
    # kappa is undefined (chance agreement is already perfect). About half the resamples do.
    m = pairwise_metrics(["a", "b"], ["a", "b"], reps=200, seed=3)
    assert m["kappa"]["value"] == 1.0
    k = m["kappa"]["undefined"]
    assert 60 < k < 140, k
    assert m["accuracy"]["undefined"] == 0  # accuracy is defined on every resample
    # Pointwise: a Spearman of a resample whose human scores are all one value is undefined.
    p = pointwise_metrics([1, 5, 5], [1.0, 4.5, 4.0], (1, 5), reps=200, seed=3)
    assert 0 < p["spearman"]["undefined"] < 200 and p["mae"]["undefined"] == 0
    report = EvalReport(
        data="set.jsonl", data_sha256="0" * 64, kind="pairwise", rows=2, rejected=[], output_dir=str(tmp_path),
        scoring={"method": "logprob", "pairwise_policy": "strict", "tie_threshold": 0.0}, pairwise_orders="both",
        bootstrap={"reps": 200, "seed": 3, "level": 0.95}, judges={"x": m},
    )
    table = eval_table(report)
    assert f"Cohen's kappa                     1.000 [1.000, 1.000] (undefined in {k} of 200 resamples)" in table
    assert "100.0% [100.0%, 100.0%]\n" in table  # no note where every resample was defined
    assert report.to_json()["judges"]["x"]["kappa"]["undefined"] == k


# ----------------------------------------------------------------------------------------------
# run_eval with scripted judges


def oracle_judge() -> ScriptedBackend:
    """Knows the human label of every shipped pair: right in both orders. On the pairs humans call
    a tie it says tie but leans to the item's response A in both orders (P(A wins) 0.6), so only a
    tie band of at least 0.1 reads them as ties."""
    truth = {}
    for line in PAIRS.read_text().splitlines():
        r = json.loads(line)
        truth[(r["response_a"], r["response_b"])] = r["label"]

    def respond(prompt, params):
        t = shown(prompt)
        a, b = t["response A"], t["response B"]
        if (a, b) in truth:
            label = judge_winner(truth[(a, b)])
            item_a = "A"
        else:  # shown swapped: the item's a is the judge's B
            label = {"A": "B", "B": "A", "tie": "tie"}[judge_winner(truth[(b, a)])]
            item_a = "B"
        if label == "tie":
            return first_token({"tie": 0.6, item_a: 0.3, ("B" if item_a == "A" else "A"): 0.1})
        return first_token({label: 0.8, **{k: 0.1 for k in ("A", "B", "tie") if k != label}})

    return ScriptedBackend(respond)


def pair_cfg(tmp_path, **kw) -> JobConfig:
    return JobConfig(data=PAIRS, output=tmp_path / "unused.jsonl", rubrics=["instruction_following"], **kw)


def test_eval_of_a_perfect_judge(tmp_path):
    report = run_eval(pair_cfg(tmp_path), PAIRS, tmp_path / "ev", backend=oracle_judge(), progress=False, bootstrap=200)
    m = report.judges["instruction_following"]
    assert m["n"] == 38 and m["accuracy"]["value"] == 1.0 and m["kappa"]["value"] == 1.0
    assert m["accuracy"]["ci95"] == [1.0, 1.0] and m["swap_consistency"] == 1.0
    assert m["position"]["first_shown_win_rate"] == 0.5  # balanced labels, no position bias
    assert set(m["subsets"]["category"]) == {"arithmetic", "factual", "on_topic", "refusal", "format", "equivalent"}
    assert all(s["accuracy"] == 1.0 for s in m["subsets"]["category"].values())
    # Strict JSON: the subset of human ties has an undefined kappa, written as null, never NaN.
    assert m["subsets"]["category"]["equivalent"]["kappa"] is None
    assert strict_json(tmp_path / "ev" / "report.json")["judges"] == report.to_json()["judges"]
    table = eval_table(report)
    assert "accuracy (3-way, ties included)  100.0% [100.0%, 100.0%]" in table and "by meta.category" in table


def test_eval_exposes_a_position_biased_judge(tmp_path):
    biased = ScriptedBackend(lambda prompt, params: first_token({"A": 0.8, "B": 0.15, "tie": 0.05}))
    report = run_eval(pair_cfg(tmp_path), PAIRS, tmp_path / "ev", backend=biased, progress=False, bootstrap=200)
    m = report.judges["instruction_following"]
    assert m["predicted"] == {"inconsistent": 38} and m["accuracy_no_ties"]["value"] == 0.0
    assert m["swap_consistency"] == 0.0 and m["position"]["first_shown_win_rate"] == 1.0
    # A single order would have looked like a coin: right on every pair whose answer is A.
    assert m["single_order_AB"]["accuracy_no_ties"] == pytest.approx(17 / 34)


def test_calibration_saves_a_config_that_judge_and_eval_load(tmp_path):
    saved = tmp_path / "calibrated.yaml"
    report = run_eval(
        pair_cfg(tmp_path), PAIRS, tmp_path / "ev", backend=oracle_judge(), progress=False, bootstrap=0,
        calibrate_=True, save_path=saved,
    )
    fit = report.calibration["tie_threshold"]
    assert fit["accuracy"] == 1.0 and 0.0 < fit["tie_threshold"] < 0.5
    cfg = load_job_config(saved, {"data": str(PAIRS), "output": str(tmp_path / "x.jsonl")})
    assert cfg.scoring.pairwise_policy == "average-probability"
    assert cfg.scoring.tie_threshold == fit["tie_threshold"]
    assert cfg.scoring.calibration["data_sha256"] == report.data_sha256
    assert cfg.rubrics == ["instruction_following"]
    again = run_eval(cfg, PAIRS, tmp_path / "ev2", backend=oracle_judge(), progress=False, bootstrap=0)
    m = again.judges["instruction_following"]
    assert m["accuracy"]["value"] == 1.0 and m["policy"] == "average-probability"


def test_eval_refuses_a_rubric_of_the_wrong_kind(tmp_path):
    with pytest.raises(ConfigError, match="pairwise labelled set needs a pairwise rubric"):
        run_eval(pair_cfg(tmp_path).model_copy(update={"rubrics": ["helpfulness"]}), PAIRS, tmp_path / "ev",
                 backend=oracle_judge(), progress=False)
    rows = [{"id": "1", "prompt": "q", "response": "r", "human_score": 3, "scale": [1, 5]}]
    c = JobConfig(data=PAIRS, output=tmp_path / "o.jsonl", rubrics=["factual_consistency"])
    with pytest.raises(ConfigError, match="grades against a reference; 1 rows have none"):
        run_eval(c, write(tmp_path, rows), tmp_path / "ev", backend=oracle_judge(), progress=False)


def test_pointwise_eval_with_a_scripted_judge(tmp_path):
    # Scores 5 when the response contains the reference's text, else 1: perfect on the shipped set
    # except the partial answers.
    def respond(prompt, params):
        t = shown(prompt)
        good = t["response"] == t.get("reference answer")
        if good:
            return scores(("consistency", {"5": 0.9, "4": 0.1}), ("completeness", {"3": 1.0}))
        return scores(("consistency", {"1": 0.9, "2": 0.1}), ("completeness", {"1": 0.8, "2": 0.2}))

    c = JobConfig(data=POINTS, output=tmp_path / "o.jsonl", rubrics=["factual_consistency"])
    report = run_eval(c, POINTS, tmp_path / "ev", backend=ScriptedBackend(respond), progress=False, bootstrap=100)
    m = report.judges["factual_consistency"]
    assert m["n"] == 40 and m["scored"] == 40
    assert m["spearman"]["value"] > 0.8 and m["kappa_quadratic"]["value"] > 0.8
    # A percentile interval need not contain the estimate; it is an ordered pair of correlations,
    # drawn with the job's seed, and the one a fresh computation with that seed gives.
    lo, hi = m["spearman"]["ci95"]
    assert -1.0 <= lo < hi <= 1.0 and m["spearman"]["undefined"] == 0
    again = run_eval(c, POINTS, tmp_path / "ev", backend=ScriptedBackend(respond), progress=False, bootstrap=100)
    assert again.judges["factual_consistency"]["spearman"] == m["spearman"]
    assert report.bootstrap.reps == 100 and report.bootstrap.seed == c.sampling.seed
    assert "partial" in m["subsets"]["category"]


# ----------------------------------------------------------------------------------------------
# The bundled model


@pytest.mark.model
@pytest.mark.vllm
def test_eval_on_the_bundled_model_pairwise(vllm_backend, tmp_path):
    report = run_eval(pair_cfg(tmp_path), PAIRS, tmp_path / "ev", backend=vllm_backend, progress=False, bootstrap=200)
    m = report.judges["instruction_following"]
    assert m["n"] == 38 and m["scored"] == 38
    assert sum(map(sum, m["confusion"]["matrix"])) == 38
    for key in ("accuracy", "accuracy_no_ties"):
        # Defined on every resample of 38 scored pairs; a percentile interval need not contain the
        # estimate, but it is an ordered pair of accuracies.
        lo, hi = m[key]["ci95"]
        assert 0.0 <= lo <= hi <= 1.0 and m[key]["undefined"] == 0 and 0.0 <= m[key]["value"] <= 1.0
    assert m["kappa"]["value"] is not None and -1.0 <= m["kappa"]["value"] <= 1.0
    assert 0.0 <= m["swap_consistency"] <= 1.0 and m["n_both_orders"] == 38
    assert m["position"]["n_pairs_both_orders"] == 38
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    unequal = [r for r in rows if r["label"] != "tie" and len(r["response_a"]) != len(r["response_b"])]
    assert m["length"]["n_human"] == len(unequal) > 0


@pytest.mark.model
@pytest.mark.vllm
def test_eval_on_the_bundled_model_reference_guided(vllm_backend, tmp_path):
    c = JobConfig(data=POINTS, output=tmp_path / "o.jsonl", rubrics=["factual_consistency"])
    report = run_eval(c, POINTS, tmp_path / "ev", backend=vllm_backend, progress=False, bootstrap=200)
    m = report.judges["factual_consistency"]
    assert m["n"] == 40 and m["scored"] == 40
    # Expected-value scores of 40 items vary: every correlation is defined, and the report file is
    # strict JSON (an undefined statistic would be null there, never NaN).
    for k in ("spearman", "kendall", "pearson"):
        assert isinstance(m[k]["value"], float) and -1.0 <= m[k]["value"] <= 1.0, (k, m[k])
    assert isinstance(m["mae"]["value"], float) and 0.0 <= m["mae"]["value"] <= 4.0
    strict_json(tmp_path / "ev" / "report.json")
    judgments = [json.loads(line) for line in (tmp_path / "ev" / "judgments.jsonl").read_text().splitlines()]
    assert all(j["kind"] == "reference" and j["extra"]["method"] == "logprob" for j in judgments)
    assert all(set(j["extra"]["expected"]) == {"consistency", "completeness"} for j in judgments)


@pytest.mark.model
def test_the_eval_command_on_the_bundled_model(tmp_path):
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()][:4]
    data = write(tmp_path, rows)
    out = tmp_path / "ev"
    result = CliRunner().invoke(
        main,
        ["eval", "--data", str(data), "--rubric", "instruction_following", "--backend", "hf", "--output-dir", str(out),
         "--bootstrap", "50", "--no-progress", "--calibrate", "--save-config", str(tmp_path / "cal.yaml")],
    )
    assert result.exit_code == 0, result.output
    assert "accuracy (3-way, ties included)" in result.output and "swap consistency" in result.output
    report = strict_json(out / "report.json")
    assert report["judges"]["instruction_following"]["n"] == 4
    assert all("undefined" in report["judges"]["instruction_following"][k] for k in ("accuracy", "kappa"))
    assert (tmp_path / "cal.yaml").exists() and "calibrated tie band" in result.output
    bad = CliRunner().invoke(main, ["eval", "--data", str(tmp_path / "missing.jsonl"), "--backend", "hf"])
    assert bad.exit_code == 2 and "dataset not found" in bad.output
