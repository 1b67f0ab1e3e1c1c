"""The model-collapse benchmark (``benchmarks/collapse.py``) runs end to end at tiny sizes.

A smoke test of the script, not of its finding: two generations of a tiny Llama trained on the
script's own corpus, under both data policies, must leave a JSON with generation 0 and every
generation of each policy, each with its measured monitors, the training data each policy
prescribes and the thresholds taken from generation 0.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def collapse():
    spec = importlib.util.spec_from_file_location("collapse_bench", ROOT / "benchmarks" / "collapse.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # pydantic resolves the records' annotations through it
    spec.loader.exec_module(mod)
    return mod


TINY = ["--generations", "2", "--corpus", "120", "--references", "20", "--samples", "60", "--eval", "40",
        "--steps", "15", "--batch", "8", "--hidden", "32", "--vocab", "300", "--max-tokens", "16", "--quiet"]


def test_corpus_is_deterministic_with_a_tail(collapse):
    a, b = collapse.human_corpus(300, seed=0), collapse.human_corpus(300, seed=0)
    assert a == b and len(set(a)) == 300
    assert collapse.human_corpus(300, seed=1) != a
    from collections import Counter

    from rlaif._monitor_metrics import tokens

    counts = Counter(w for t in a for w in tokens(t))
    assert sum(1 for c in counts.values() if c == 1) >= 10  # rare words: the tail the monitors watch


def test_first_alarm_ordering(collapse):
    from rlaif import Alarm, measure_round

    mon = measure_round(["a b c"], ["a b c"])

    def rec(g, policy, fired):
        alarms = [Alarm(monitor=m, round=g, value=0.0, threshold=1.0, direction="below", message="x") for m in fired]
        return collapse.GenerationRecord(generation=g, policy=policy, train_rows=1, synthetic_share=1.0, train_loss=1.0,
                                         monitors=mon, alarms=alarms, examples=[])

    records = [rec(1, "replace", ["distinct_2"]), rec(2, "replace", ["distinct_2", "tail_coverage"]),
               rec(1, "accumulate", []), rec(2, "accumulate", ["distinct_2", "self_bleu"])]
    got = {f.monitor: (f.replace, f.accumulate, f.ordering_held) for f in collapse.first_alarms(records)}
    assert got == {"distinct_2": (1, 2, True), "tail_coverage": (2, None, True), "self_bleu": (None, 2, False)}


def test_main_writes_monitors_per_generation_for_both_policies(collapse, tmp_path):
    out = tmp_path / "collapse.json"
    report = collapse.main([*TINY, "--out", str(out)])
    data = json.loads(out.read_text())
    assert collapse.CollapseReport.model_validate(data) == report
    by = {(r["policy"], r["generation"]): r for r in data["records"]}
    assert set(by) == {("human", 0), ("replace", 1), ("replace", 2), ("accumulate", 1), ("accumulate", 2)}
    human = data["corpus"]["human_train"]
    assert human == 100
    for (policy, g), r in by.items():
        m = r["monitors"]
        assert m["round"] == g and m["n_outputs"] == 40 and m["n_references"] == 20
        assert 0 < m["distinct_2"] <= 1 and m["tail_coverage"] is not None and m["n_rare_ngrams"] > 0
        assert m["mean_length"] > 0 and m["mean_length_ratio"] is not None
        assert r["train_loss"] > 0
    assert by[("human", 0)]["train_rows"] == human
    # replace trains on the previous generation's samples only; accumulate keeps everything
    assert [by[("replace", g)]["train_rows"] for g in (1, 2)] == [60, 60]
    assert [by[("accumulate", g)]["train_rows"] for g in (1, 2)] == [human + 60, human + 120]
    assert by[("replace", 2)]["monitors"]["synthetic_share"] == 1.0
    assert by[("accumulate", 2)]["monitors"]["synthetic_share"] == pytest.approx(120 / (human + 120))
    g0 = by[("human", 0)]["monitors"]
    assert data["thresholds"]["distinct_2"]["below"] == pytest.approx(0.8 * g0["distinct_2"])
    assert data["thresholds"]["tail_coverage"]["below"] == pytest.approx(0.8 * g0["tail_coverage"])
    assert {f["monitor"] for f in data["first_alarms"]} == set(collapse.WATCHED)
    for r in data["records"]:  # every alarm recorded is one the thresholds call for
        for a in r["alarms"]:
            bound = data["thresholds"][a["monitor"]]
            assert a["threshold"] == bound[a["direction"]] and a["round"] == r["generation"]
