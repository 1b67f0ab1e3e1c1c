"""Dataset readers: JSONL and Parquet, row numbers, and per-row errors."""

from __future__ import annotations

import json

import pytest

from judge.core._errors import DataError
from judge.inputs._data import count_rows, iter_rows


def test_jsonl_rows_keep_their_line_numbers(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"prompt": "a", "response": "b"}\n'
        "\n"
        "   \n"
        '{"prompt": "c"\n'
        "[1, 2]\n"
        '"text"\n'
        '{"prompt": "d", "response": "e"}\n',
        encoding="utf-8",
    )
    rows = list(iter_rows(path))
    assert [n for n, _, _ in rows] == [1, 4, 5, 6, 7]
    assert rows[0] == (1, {"prompt": "a", "response": "b"}, None)
    assert rows[1][1] is None and rows[1][2].startswith("invalid JSON")
    assert "column" in rows[1][2]
    assert rows[2][2] == "each line must be a JSON object, got list"
    assert rows[3][2] == "each line must be a JSON object, got str"
    assert rows[4] == (7, {"prompt": "d", "response": "e"}, None)
    assert count_rows(path) == 5


def test_last_line_without_newline_and_invalid_utf8(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"prompt": "caf\xe9", "response": "x"}\n{"prompt": "p", "response": "r"}')
    rows = list(iter_rows(path))
    assert len(rows) == 2
    assert rows[0][1]["prompt"].startswith("caf")  # undecodable byte replaced, row kept
    assert rows[1] == (2, {"prompt": "p", "response": "r"}, None)


def test_parquet_rows(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [
        {"id": "a", "prompt": "p1", "response": "r1", "meta": {"src": "x"}},
        {"prompt": "p2", "response_a": "a", "response_b": "b"},
    ]
    path = tmp_path / "d.parquet"
    columns = ["id", "prompt", "response", "response_a", "response_b", "meta"]
    pq.write_table(pa.Table.from_pydict({c: [r.get(c) for r in rows] for c in columns}), path)
    got = list(iter_rows(path))
    assert [n for n, _, _ in got] == [1, 2]
    # Columns a row does not use are null in Parquet: they come back absent, not as None.
    assert got[0][1] == {"id": "a", "prompt": "p1", "response": "r1", "meta": {"src": "x"}}
    assert got[1][1] == {"prompt": "p2", "response_a": "a", "response_b": "b"}
    assert count_rows(path) == 2


def test_unreadable_datasets_are_errors(tmp_path):
    with pytest.raises(DataError, match="dataset not found"):
        list(iter_rows(tmp_path / "absent.jsonl"))
    csv = tmp_path / "d.csv"
    csv.write_text("prompt,response\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"unsupported dataset format '\.csv'; use \.jsonl or \.parquet"):
        list(iter_rows(csv))
    assert count_rows(csv) is None
    fake = tmp_path / "d.parquet"
    fake.write_text(json.dumps({"prompt": "not parquet"}), encoding="utf-8")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        list(iter_rows(fake))


def test_integer_ids_are_read_as_text():
    from judge.core._records import Item

    assert Item.model_validate({"id": 17, "prompt": "p", "response": "r"}).id == "17"
    with pytest.raises(Exception):
        Item.model_validate({"id": True, "prompt": "p", "response": "r"})
