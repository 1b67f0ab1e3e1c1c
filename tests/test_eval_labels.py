"""Labelled sets as people have them: extra columns, mapped columns, label spellings, duplicate ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge.core._config import JobConfig
from judge.core._errors import DataError
from judge.eval import eval_table, read_labelled, run_eval
from judge.inputs import DatasetReport

DATA = Path(__file__).resolve().parent / "data"
PAIRS = DATA / "pairs_labelled.jsonl"
ARENA_COLUMNS = {"id": "question_id", "prompt": "question", "response_a": "answer_a", "response_b": "answer_b", "label": "winner"}
ARENA_LABELS = {"model_a": "a", "model_b": "b", "tie": "tie", "tie (bothbad)": "tie"}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _arena_rows() -> list[dict]:
    """The shipped labelled pairs as a Chatbot Arena style export, with its own names and spellings."""
    winner = {"a": "model_a", "b": "model_b", "tie": "tie"}
    out = []
    for n, line in enumerate(PAIRS.read_text(encoding="utf-8").splitlines()):
        r = json.loads(line)
        out.append(
            {
                "question_id": r["id"],
                "question": r["prompt"],
                "answer_a": r["response_a"],
                "answer_b": r["response_b"],
                "winner": "tie (bothbad)" if r["label"] == "tie" and n % 2 else winner[r["label"]],
                "model_a": "m1",
                "model_b": "m2",
                "category": r["meta"]["category"],
                "judge": f"annotator-{n % 3}",
            }
        )
    return out


def test_a_set_with_one_more_column_is_read_whole(tmp_path):
    rows = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines()]
    path = _jsonl(tmp_path / "s.jsonl", [{**r, "source": "public-set"} for r in rows])
    report = DatasetReport()
    kind, got, rejects = read_labelled(path, report=report)
    assert kind == "pairwise" and len(got) == len(rows) and rejects == []
    assert got[0].meta == {"category": rows[0]["meta"]["category"], "source": "public-set"}
    assert report.extra_columns == {"source": len(rows)}


def test_arena_columns_and_labels_are_mapped_and_nothing_is_guessed(tmp_path):
    rows = _arena_rows()[:3] + [
        {"question_id": 900, "question": "q", "answer_a": "x", "answer_b": "y", "winner": "A"},
        {"question_id": 901, "question": "q", "answer_a": "x", "winner": "model_a"},
    ]
    path = _jsonl(tmp_path / "arena.jsonl", rows)
    kind, got, rejects = read_labelled(path, ARENA_COLUMNS, ARENA_LABELS)
    assert kind == "pairwise" and [r.label for r in got] == ["b", "a", "b"]
    assert got[0].meta == {"model_a": "m1", "model_b": "m2", "category": "arithmetic", "judge": "annotator-0"}
    assert rejects == [
        {"line": 4, "error": "label 'A' is not a, b or tie, nor one of the values 'labels' maps "
         "('model_a', 'model_b', 'tie', 'tie (bothbad)')"},
        {"line": 5, "error": "mapped column(s) missing or null: 'answer_b' (for response_b)"},
    ]  # fmt: skip
    # Without the labels mapping, Arena's spellings are rejects that say how to map them.
    _, _, unmapped = read_labelled(_jsonl(tmp_path / "one.jsonl", rows[:1] + [{**rows[1], "winner": "a"}]), ARENA_COLUMNS)
    assert unmapped == [{"line": 1, "error": "label 'model_b' is not a, b or tie; map the set's values in the config, e.g. labels: {model_b: a}"}]


def test_numeric_label_spellings_need_their_mapping(tmp_path):
    rows = [
        {"id": "1", "prompt": "q", "response_a": "x", "response_b": "y", "label": 1},
        {"id": "2", "prompt": "q", "response_a": "x", "response_b": "z", "label": 2},
        {"id": "3", "prompt": "q", "response_a": "x", "response_b": "w", "label": 0},
    ]
    cfg = JobConfig(data="-", output="-", labels={1: "a", 2: "b", 0: "tie"})  # as YAML reads `1: a`
    _, got, rejects = read_labelled(_jsonl(tmp_path / "n.jsonl", rows), cfg.columns, cfg.labels)
    assert [r.label for r in got] == ["a", "b", "tie"] and rejects == []


def test_annotators_disagreeing_on_one_pair_are_a_reported_duplicate(tmp_path):
    pair = {"prompt": "q", "response_a": "x", "response_b": "y"}
    path = _jsonl(
        tmp_path / "d.jsonl",
        [{**pair, "label": "a", "annotator": "u1"}, {**pair, "label": "a", "annotator": "u2"}, {**pair, "label": "b"}],
    )
    report = DatasetReport()
    _, got, rejects = read_labelled(path, report=report)
    assert len(got) == 1 and got[0].id.startswith("item-")  # no id column: derived from the texts
    assert rejects == [{"line": 3, "error": f"duplicate id {got[0].id!r} with different content (first seen at line 1)"}]
    assert (report.repeated, report.duplicate_ids) == (1, 1)


def test_a_set_whose_every_row_is_rejected_says_why_and_where(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"id": "1", "prompt": "q", "response_a": "x", "response_b": "y", "label": "A"}] * 2)
    with pytest.raises(DataError) as exc:
        read_labelled(path, rejects_path=tmp_path / "rejects.jsonl")
    assert str(exc.value) == (
        f"{path}: no valid labelled row: 2 rows read, 2 rejected (listed in {tmp_path / 'rejects.jsonl'}); "
        "first reject, line 1: label 'A' is not a, b or tie; map the set's values in the config, e.g. labels: {A: a}"
    )
    written = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in written] == [1, 2] and written[0]["row"]["label"] == "A"


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_eval_of_an_arena_export_without_a_conversion_script(tmp_path, fmt):
    from test_eval import oracle_judge

    rows = _arena_rows()
    path = tmp_path / f"arena.{fmt}"
    if fmt == "parquet":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        import csv

        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    cfg = JobConfig(
        data=path, output=tmp_path / "unused.jsonl", rubrics=["instruction_following"],
        columns=ARENA_COLUMNS, labels=ARENA_LABELS,
    )  # fmt: skip
    report = run_eval(cfg, path, tmp_path / "ev", backend=oracle_judge(), progress=False, bootstrap=0)
    m = report.judges["instruction_following"]
    # The oracle knows the shipped labels: every mapped row, every mapped label, agrees.
    assert m["n"] == len(rows) and m["accuracy"]["value"] == 1.0
    assert set(m["subsets"]["category"]) == {"arithmetic", "factual", "on_topic", "refusal", "format", "equivalent"}
    assert report.rejected == []
    assert report.dataset["extra_columns"] == {"model_a": len(rows), "model_b": len(rows), "category": len(rows), "judge": len(rows)}
    assert "extra columns kept in meta: model_a, model_b, category, judge" in eval_table(report)
