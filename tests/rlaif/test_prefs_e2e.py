"""End to end on the bundled model: `judgeloop judge` on pairs (hf, both orders), then `judgeloop prefs build`."""

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


def test_judged_pairs_on_the_bundled_model_become_a_trl_dataset(tmp_path: Path, model_dir: str) -> None:
    rows = []
    for i, (prompt, good, bad) in enumerate(PAIRS):
        # Good answer first in half the items, second in the others, so position bias alone cannot win.
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        rows.append({"id": f"q{i}", "prompt": prompt, "response_a": a, "response_b": b})
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run = tmp_path / "run"
    env = dict(os.environ, JUDGELOOP_CACHE=str(Path(model_dir).parent.parent), HF_HUB_OFFLINE="1")
    judge = [
        sys.executable, "-m", "judge.cli", "judge", "--data", str(data), "--output", str(run / "judgments.jsonl"),
        "--rubric", "instruction_following", "--backend", "hf", "--model", model_dir, "--orders", "both",
        "--max-tokens", "16", "--no-progress", "--json",
    ]  # fmt: skip
    proc = subprocess.run(judge, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    verdicts = read_pair_verdicts(run / "judgments.verdicts.jsonl")
    assert len(verdicts) == len(PAIRS)

    out = tmp_path / "prefs"
    build = [sys.executable, "-m", "judge.cli", "prefs", "build", str(run), "--data", str(data), "--out", str(out),
             "--min-margin", "0", "--max-length-ratio", "50", "--test-fraction", "0", "--json"]
    proc = subprocess.run(build, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    usable = [v for v in verdicts if v.status == "scored" and v.consistent and v.winner in ("A", "B")]
    if not usable:  # the judge gave no usable verdict: the build must say so, not write a dataset
        assert proc.returncode == 2 and "no preference pairs" in proc.stderr
        pytest.fail(f"the bundled judge gave no swap-consistent verdict on {len(PAIRS)} clear pairs: {verdicts}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["candidates"] == len(PAIRS) == report["pairs"] + sum(report["excluded"].values())
    assert report["pairs"] == len(usable)
    assert report["excluded"]["inconsistent"] == sum(v.consistent is False for v in verdicts)

    data_rows = load_training_rows(out, "dpo").rows
    assert len(data_rows) == len(usable)
    written = [json.loads(x) for x in (out / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    by_item = {v.item_id: v for v in usable}
    for row in written:
        v = by_item[row["item_ids"][0]]
        item = rows[int(v.item_id[1:])]
        side = "response_a" if v.winner == "A" else "response_b"
        assert row["chosen"][0]["content"] == item[side]
        assert (row["p_a_ab"], row["p_a_ba"]) == (v.p_a["AB"], v.p_a["BA"])
        assert row["judge_fingerprint"] == v.judge.model_hash and row["audit_status"] == "unaudited"
        back = walk_back(row)
        assert sorted(j.key for j in back.judgments) == sorted(v.judgment_keys.values())
        assert back.items[0].prompt == item["prompt"]
    print(f"kept {report['pairs']} of {len(PAIRS)}; excluded {report['excluded']}")
