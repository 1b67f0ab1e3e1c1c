"""From rows to items: column mapping, extra columns kept in meta, repeated rows and duplicate ids."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from judge.core._config import JobConfig
from judge.core._load import load_job_config
from judge.core._errors import ConfigError
from judge.inputs import DatasetReport, ItemReader, shape_row


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _read(path: Path, **kw):
    rejects: list[tuple[int, str]] = []
    reader = ItemReader(path, on_reject=lambda line, row, error: rejects.append((line, error)), **kw)
    items = list(reader)
    return items, rejects, reader.report


def test_extra_columns_are_kept_in_meta_and_counted_once(tmp_path):
    data = _jsonl(
        tmp_path / "d.jsonl",
        [
            {"id": "1", "prompt": "p", "response": "r", "source": "web", "annotator": "ann-3"},
            {"id": "2", "prompt": "p", "response": "s", "source": "book", "meta": {"source": "explicit", "k": 1}},
            {"id": "3", "prompt": "p", "response": "t"},
        ],
    )
    items, rejects, report = _read(data)
    assert rejects == []
    assert [i.meta for i in items] == [
        {"source": "web", "annotator": "ann-3"},
        {"source": "explicit", "k": 1},  # an explicit meta key wins over a column of the same name
        {},
    ]
    assert report.extra_columns == {"source": 2, "annotator": 1}
    assert report.lines() == ["  extra columns kept in meta: source, annotator"]
    assert (report.rows, report.items, report.rejected) == (3, 3, 0)


def test_a_row_is_rejected_only_for_what_it_lacks_or_gets_wrong(tmp_path):
    data = _jsonl(
        tmp_path / "d.jsonl",
        [
            {"id": "1", "response": "r", "source": "web"},
            {"id": "2", "prompt": "p", "response": 3, "source": "web"},
            {"id": "3", "prompt": "p", "response": "r", "meta": "not an object", "source": "web"},
            {"id": "4", "prompt": "p", "response": "r", "source": "web"},
        ],
    )
    items, rejects, report = _read(data)
    assert [i.id for i in items] == ["4"]
    assert rejects == [
        (1, "prompt: Field required"),
        (2, "response: Input should be a valid string"),
        (3, "meta: must be an object, got str"),
    ]
    assert report.first_reject == "line 1: prompt: Field required"


def test_columns_map_an_alpacaeval_export(tmp_path):
    data = _jsonl(
        tmp_path / "alpaca.jsonl",
        [
            {"instruction": "Name a colour.", "output": "Blue.", "generator": "gpt-4", "dataset": "helpful_base"},
            {"instruction": "Say hi.", "generator": "gpt-4"},
            {"instruction": "Count.", "output": "1 2 3", "generator": "m", "prompt": "an unrelated column"},
        ],
    )
    items, rejects, report = _read(data, columns={"prompt": "instruction", "response": "output"})
    assert [(i.prompt, i.response) for i in items] == [("Name a colour.", "Blue."), ("Count.", "1 2 3")]
    assert items[0].meta == {"generator": "gpt-4", "dataset": "helpful_base"}
    # A column named like a field the mapping replaced is data too: it is kept, in meta.
    assert items[1].meta == {"generator": "m", "prompt": "an unrelated column"}
    assert rejects == [(2, "mapped column(s) missing or null: 'output' (for response)")]
    assert report.extra_columns == {"generator": 2, "dataset": 1, "prompt": 1}


def test_columns_map_an_arena_style_export_and_ignore_label_fields_when_judging(tmp_path):
    row = {"question_id": 81, "question": "q", "answer_a": "a", "answer_b": "b", "model_a": "x", "model_b": "y",
           "winner": "model_a"}  # fmt: skip
    data = _jsonl(tmp_path / "arena.jsonl", [row])
    cols = {"id": "question_id", "prompt": "question", "response_a": "answer_a", "response_b": "answer_b", "label": "winner"}
    items, rejects, _ = _read(data, columns=cols)
    assert rejects == []
    (item,) = items
    assert (item.id, item.prompt, item.response_a, item.response_b) == ("81", "q", "a", "b")
    assert item.meta == {"model_a": "x", "model_b": "y", "winner": "model_a"}


def test_shape_row_without_a_mapping_reads_fields_by_name():
    shaped, error, extra = shape_row({"prompt": "p", "x": 1}, ["prompt", "meta"])
    assert (shaped, error, extra) == ({"prompt": "p", "meta": {"x": 1}}, None, ["x"])


def test_the_column_mapping_is_validated_in_the_config(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("data: d.jsonl\noutput: o.jsonl\ncolumns:\n  promt: instruction\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_job_config(cfg)
    msg = str(exc.value)
    assert "job.yaml:4:3: columns: unknown field(s) ['promt']" in msg
    assert "'prompt', 'response', 'response_a', 'response_b', 'reference', 'meta', 'label'" in msg
    ok = JobConfig(data="d", output="o", columns={"prompt": "instruction"}, labels={1: "a", "model_b": "b"})
    assert ok.labels == {"1": "a", "model_b": "b"}  # YAML integer keys are matched as text
    with pytest.raises(ValueError, match="Input should be 'a', 'b' or 'tie'"):
        JobConfig(data="d", output="o", labels={"model_a": "A"})


def test_same_id_and_texts_is_a_repeated_row_and_other_texts_a_reject(tmp_path):
    data = _jsonl(
        tmp_path / "d.jsonl",
        [
            {"id": "x", "prompt": "p", "response": "r"},
            {"id": "y", "prompt": "p", "response": "r"},
            {"id": "x", "prompt": "p", "response": "r", "meta": {"copy": 2}},  # the same item again
            {"id": "x", "prompt": "p", "response": "something else"},
            {"prompt": "q", "response": "s"},  # ids derived from the texts behave the same
            {"prompt": "q", "response": "s"},
        ],
    )
    items, rejects, report = _read(data, scratch_dir=tmp_path / "scratch")
    assert [i.id for i in items][:3] == ["x", "y", "x"] and len(items) == 5
    assert rejects == [(4, "duplicate id 'x' with different content (first seen at line 1)")]
    assert (report.repeated, report.duplicate_ids, report.rejected) == (2, 1, 1)
    assert list((tmp_path / "scratch").iterdir()) == []  # the id index is scratch, gone after the read


def test_the_id_index_lives_in_a_file_beside_the_output_while_reading(tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", [{"id": str(i), "prompt": "p", "response": str(i)} for i in range(3)])
    reader = ItemReader(data, scratch_dir=tmp_path / "out")
    it = iter(reader)
    next(it)
    (index,) = (tmp_path / "out").iterdir()
    assert index.suffix == ".sqlite"
    assert len(list(it)) == 2
    assert not index.exists()


def test_duplicate_ids_are_found_in_bounded_memory(tmp_path):
    n = 40_000
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"row-{i:06d}", "prompt": "p", "response": f"r{i}"}) + "\n")
        fh.write(json.dumps({"id": "row-000007", "prompt": "p", "response": "changed"}) + "\n")
    rejects: list[tuple[int, str]] = []
    reader = ItemReader(path, on_reject=lambda line, row, error: rejects.append((line, error)), scratch_dir=tmp_path)
    tracemalloc.start()
    count = sum(1 for _ in reader)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == n
    assert rejects == [(n + 1, "duplicate id 'row-000007' with different content (first seen at line 8)")]
    # A dict of 40k ids and hashes alone would take several MB of Python heap; the index is in SQLite.
    assert peak < 2_000_000, peak


def test_check_and_limit(tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", [{"id": str(i), "prompt": "p", "response": str(i)} for i in range(6)])
    items, rejects, report = _read(
        data, check=lambda item: "odd" if int(item.id) % 2 else None, limit=2
    )
    assert [i.id for i in items] == ["0", "2"]
    assert rejects == [(2, "odd")]
    assert report.rows == 3 and report.items == 2
    assert DatasetReport().lines() == []
