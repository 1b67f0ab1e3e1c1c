"""End to end on the bundled model: `judgeloop judge` (hf), then `judgeloop prefs build` on what it wrote.

The bundled 135M judge prefers the first position on pairs by about one bf16 logit step, which the
noise rule reads as a tie: from pairs it yields no preference, and the build must say so with the
counts. Its pointwise scores do separate two responses to one prompt, so the positive path (a TRL
dataset walked back to its judgments and items) runs on pointwise judgments of two candidates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from judge.analysis import read_pair_verdicts
from rlaif import load_training_rows, walk_back

pytestmark = [pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]

PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris.", "Bananas are yellow and grow on trees."),
    ("What is 2 + 2?", "2 + 2 = 4.", "The weather in spring is often mild."),
    ("Name a primary colour.", "Red is a primary colour.", "I enjoy long walks by the sea."),
    ("Translate 'hello' into French.", "Bonjour.", "Elephants are the largest land animals."),
    ("What colour is the sky on a clear day?", "Blue.", "Seven."),
    ("How many legs does a spider have?", "A spider has eight legs.", "Trains run on rails."),
]


def _judge(tmp_path: Path, rows: list[dict], rubric: str, model_dir: str, name: str) -> tuple[Path, Path, dict]:
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run = tmp_path / name
    env = dict(os.environ, JUDGELOOP_CACHE=str(Path(model_dir).parent.parent), HF_HUB_OFFLINE="1")
    judge = [
        sys.executable, "-m", "judge.cli", "judge", "--data", str(data), "--output", str(run / "judgments.jsonl"),
        "--rubric", rubric, "--backend", "hf", "--model", model_dir, "--orders", "both",
        "--max-tokens", "16", "--no-progress", "--json",
    ]  # fmt: skip
    proc = subprocess.run(judge, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data, run, env


def _build(run: Path, data: Path, out: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    build = [sys.executable, "-m", "judge.cli", "prefs", "build", str(run), "--data", str(data), "--out", str(out),
             "--max-length-ratio", "50", "--test-fraction", "0", "--json", *extra]  # fmt: skip
    return subprocess.run(build, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_judged_pairs_on_the_bundled_model_are_counted_and_never_silently_used(tmp_path: Path, model_dir: str) -> None:
    rows = []
    for i, (prompt, good, bad) in enumerate(PAIRS):
        # Good answer first in half the items, second in the others, so position bias alone cannot win.
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        rows.append({"id": f"q{i}", "prompt": prompt, "response_a": a, "response_b": b})
    data, run, env = _judge(tmp_path, rows, "instruction_following", model_dir, "pairs")
    verdicts = read_pair_verdicts(run / "judgments.verdicts.jsonl")
    assert len(verdicts) == len(PAIRS)
    proc = _build(run, data, tmp_path / "prefs", env, "--min-margin", "0")
    usable = [v for v in verdicts if v.status == "scored" and v.consistent and v.winner in ("A", "B")]
    if not usable:  # the judge gave no usable verdict: the build says so and writes nothing
        assert proc.returncode == 2 and "no preference pairs" in proc.stderr, proc.stderr[-2000:]
        assert not (tmp_path / "prefs").exists()
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["candidates"] == len(PAIRS) == report["pairs"] + sum(report["excluded"].values())
    assert report["pairs"] == len(usable)
    assert report["excluded"].get("inconsistent", 0) == sum(v.consistent is False for v in verdicts)


def test_pointwise_judgments_on_the_bundled_model_become_a_trl_dataset(tmp_path: Path, model_dir: str) -> None:
    rows = []
    for i, (prompt, good, bad) in enumerate(PAIRS):
        for tag, response in (("g", good), ("b", bad)):
            rows.append({"id": f"q{i}{tag}", "prompt": prompt, "response": response, "meta": {"prompt_id": f"p{i}"}})
    data, run, env = _judge(tmp_path, rows, "helpfulness", model_dir, "points")
    judgments = [json.loads(x) for x in (run / "judgments.jsonl").read_text(encoding="utf-8").splitlines()]
    overall = {j["item_id"]: j["overall"] for j in judgments if j["status"] == "scored"}
    assert len(overall) == len(rows), judgments

    out = tmp_path / "prefs"
    proc = _build(run, data, out, env, "--source", "pointwise", "--pointwise-pairs", "best_worst",
                  "--min-score-margin", "0")  # fmt: skip
    separated = [i for i in range(len(PAIRS)) if overall[f"q{i}g"] != overall[f"q{i}b"]]
    assert separated, f"the judge gave every candidate of every prompt the same score: {overall}"
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["pairs"] == len(separated)
    assert report["candidates"] == report["pairs"] + sum(report["excluded"].values())

    data_rows = load_training_rows(out, "dpo").rows
    assert len(data_rows) == len(separated)
    keys = {j["item_id"]: j["key"] for j in judgments}
    written = [json.loads(x) for x in (out / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(written) == len(separated)
    for row in written:
        chosen_id, rejected_id = row["item_ids"]
        assert overall[chosen_id] > overall[rejected_id]  # the better-scored candidate is the chosen one
        by_id = {r["id"]: r for r in rows}
        assert row["chosen"][0]["content"] == by_id[chosen_id]["response"]
        assert row["rejected"][0]["content"] == by_id[rejected_id]["response"]
        assert row["judge_fingerprint"] == judgments[0]["judge"]["model_hash"] and row["audit_status"] == "unaudited"
        back = walk_back(row)
        assert sorted(j.key for j in back.judgments) == sorted([keys[chosen_id], keys[rejected_id]])
        assert {it.prompt for it in back.items} == {by_id[chosen_id]["prompt"]}
