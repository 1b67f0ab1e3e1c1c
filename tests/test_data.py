"""Dataset readers: JSONL, JSON arrays, CSV, Parquet, datasets directories; row numbers and per-row errors."""

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
    # The line lacks its closing brace: the parser stopped at its end (column 15), not at column 1.
    assert "at the end of the line (column 15)" in rows[1][2] and '"prompt": "c"' in rows[1][2]
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
    tsv = tmp_path / "d.tsv"
    tsv.write_text("prompt\tresponse\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"unsupported dataset format '\.tsv'; use \.jsonl, \.ndjson, \.json, \.csv"):
        list(iter_rows(tsv))
    assert count_rows(tsv) is None
    fake = tmp_path / "d.parquet"
    fake.write_text(json.dumps({"prompt": "not parquet"}), encoding="utf-8")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        list(iter_rows(fake))


def test_integer_ids_are_read_as_text():
    from judge.core._records import Item

    assert Item.model_validate({"id": 17, "prompt": "p", "response": "r"}).id == "17"
    with pytest.raises(Exception):
        Item.model_validate({"id": True, "prompt": "p", "response": "r"})


def test_invalid_json_is_reported_where_the_parser_stopped(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": "a", "prompt": "hello", "response": "x"\r\n'  # closing brace missing, Windows newline
        '{"id": "b", "prompt": "p",, "response": "r"}\n'
        '\ufeff{"id": "c", "prompt": "p", "response": "r"}\n',  # a stray byte-order mark mid-file
        encoding="utf-8",
    )
    rows = list(iter_rows(path))
    assert rows[0][2] == (
        "invalid JSON at the end of the line (column 47): Expecting ',' delimiter "
        """(near '…"hello", "response": "x" ⟨here⟩')"""
    )
    assert rows[1][2].startswith("invalid JSON at column 27: Expecting property name")
    assert "⟨here⟩ , " in rows[1][2]
    assert rows[2][2].startswith("invalid JSON at column 1")


def test_a_byte_order_mark_is_not_part_of_the_first_row(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "p", "response": "r"}\n')
    assert list(iter_rows(path)) == [(1, {"prompt": "p", "response": "r"}, None)]


def test_json_array_rows_are_numbered_by_their_first_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n {"id": 1, "prompt": "p"},\n\n {"id": 2,\n  "prompt": "q"}, 3]\n', encoding="utf-8")
    assert list(iter_rows(path)) == [
        (2, {"id": 1, "prompt": "p"}, None),
        (4, {"id": 2, "prompt": "q"}, None),
        (5, None, "each element must be a JSON object, got int"),
    ]
    assert count_rows(path) == 3
    broken = tmp_path / "broken.json"
    broken.write_text('[\n {"id": 1, "prompt": "p"},\n {"id": 2\n]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.json: line 4: invalid JSON at column 1: Expecting ',' delimiter"):
        list(iter_rows(broken))
    lines = tmp_path / "lines.json"  # JSON lines under a .json name
    lines.write_text('{"prompt": "p"}\n{"prompt": "q"}\n', encoding="utf-8")
    assert [r for _, r, _ in iter_rows(lines)] == [{"prompt": "p"}, {"prompt": "q"}]


def test_csv_rows(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        'id,prompt,response,meta\n1,"two\nlines",r,"{""src"": ""x""}"\n2,p,,\n3,a,b,c,d\n4,p,r,{not json\n',
        encoding="utf-8",
    )
    rows = list(iter_rows(path))
    assert rows[0] == (2, {"id": "1", "prompt": "two\nlines", "response": "r", "meta": {"src": "x"}}, None)
    assert rows[1] == (4, {"id": "2", "prompt": "p"}, None)  # empty cells are absent
    assert rows[2] == (5, None, "the row has 1 more cell(s) than the header's 4")
    assert rows[3][0] == 6 and rows[3][2].startswith("meta: invalid JSON at column 2")
    assert count_rows(path) == 4


def test_datasets_directory(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(
        [{"instruction": "i", "output": "o", "generator": "g"}, {"instruction": "j", "output": None, "generator": "h"}]
    )
    ds.save_to_disk(str(tmp_path / "hf"))
    assert list(iter_rows(tmp_path / "hf")) == [
        (1, {"instruction": "i", "output": "o", "generator": "g"}, None),
        (2, {"instruction": "j", "generator": "h"}, None),
    ]
    assert count_rows(tmp_path / "hf") == 2
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "splits"))
    with pytest.raises(DataError, match=r"holds the splits \['train'\]; point 'data' at one of them"):
        list(iter_rows(tmp_path / "splits"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a directory written by datasets' save_to_disk"):
        list(iter_rows(tmp_path / "empty"))
