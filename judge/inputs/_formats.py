"""Streaming dataset readers: JSONL, JSON arrays, CSV, Parquet and Hugging Face ``datasets`` directories.

Rows are yielded with their 1-based line (JSONL, JSON array, CSV) or row (Parquet, ``datasets``)
number, so a bad row can be reported precisely and the rest of the job goes on. Which reader is
used follows the path:

- ``.jsonl`` / ``.ndjson``: one JSON object per line;
- ``.json``: a JSON array of objects, or JSON lines under a ``.json`` name (the first character says);
- ``.csv``: a header row, then one row per record; every value is text, and an empty cell is absent;
- ``.parquet`` / ``.pq``: read in batches; a null is absent;
- a directory written by ``datasets.Dataset.save_to_disk`` (one split): memory-mapped; a null is absent.

"Absent" matters because a table holding pointwise and pairwise rows has every column in every
row: a null there is a column the row does not use, not a value to validate.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from judge.core._errors import DataError

__all__ = ["Row", "check_dataset", "count_rows", "iter_rows", "json_error"]

Row = tuple[int, "dict[str, Any] | None", "str | None"]

_FORMATS = ".jsonl, .ndjson, .json, .csv, .parquet, or a directory saved by datasets' save_to_disk"


def _kind(path: Path) -> str:
    if path.is_dir():
        return "datasets"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise DataError(f"{path}: unsupported dataset format {suffix!r}; use {_FORMATS}")


def check_dataset(path: str | Path) -> None:
    """Raise :class:`DataError` unless ``path`` is a dataset one of the readers can open."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"dataset not found: {p}")
    _kind(p)


def json_error(exc: json.JSONDecodeError, text: str, pos: int | None = None) -> str:
    """Where the JSON parser stopped in ``text`` (one line of a file), with a short excerpt.

    ``pos`` is the 0-based position in ``text`` (default: the exception's own, for a line parsed alone).
    """
    pos = min(exc.pos if pos is None else pos, len(text))
    where = f"at the end of the line (column {pos + 1})" if pos >= len(text.rstrip()) else f"at column {pos + 1}"
    before = text[max(0, pos - 24) : pos]
    after = text[pos : pos + 16]
    excerpt = ("…" if pos > 24 else "") + before + " ⟨here⟩ " + after + ("…" if pos + 16 < len(text) else "")
    return f"invalid JSON {where}: {exc.msg} (near {excerpt.strip()!r})"


def _null_free(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None}


def _iter_jsonl(p: Path) -> Iterator[Row]:
    # utf-8-sig: a byte-order mark (Windows tools write one) is not part of the first row.
    with p.open("r", encoding="utf-8-sig", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                # Parsed without its newline: a line cut short is reported where it ends, not at
                # column 1 of a line that does not exist.
                yield n, None, json_error(exc, text)
                continue
            if not isinstance(obj, dict):
                yield n, None, f"each line must be a JSON object, got {type(obj).__name__}"
                continue
            yield n, obj, None


def _is_array(p: Path) -> bool:
    with p.open("r", encoding="utf-8-sig", errors="replace") as fh:
        while True:
            chunk = fh.read(4096)
            if not chunk:
                return False
            stripped = chunk.lstrip()
            if stripped:
                return stripped[0] == "["


def _iter_json_array(p: Path) -> Iterator[Row]:
    """Elements of a JSON array file, each numbered by the line it starts on."""
    text = p.read_text(encoding="utf-8-sig", errors="replace")
    try:
        json.loads(text)  # the whole file first: a broken array is a file error, not a row error
    except json.JSONDecodeError as exc:
        lines = text.splitlines() or [""]
        line = lines[min(exc.lineno, len(lines)) - 1]
        raise DataError(f"{p}: line {exc.lineno}: " + json_error(exc, line, exc.colno - 1)) from None
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    line, last = 1 + text.count("\n", 0, pos), pos
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        line += text.count("\n", last, pos)
        obj, end = decoder.raw_decode(text, pos)
        last = pos
        if isinstance(obj, dict):
            yield line, obj, None
        else:
            yield line, None, f"each element must be a JSON object, got {type(obj).__name__}"
        pos = end


def _iter_csv(p: Path) -> Iterator[Row]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long responses are normal
    with p.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.DictReader(fh, restkey="\0more")
        start = reader.line_num + 1
        try:
            for rec in reader:
                line, start = start if start > 1 else 2, reader.line_num + 1
                more = rec.pop("\0more", None)
                if more:
                    yield line, None, f"the row has {len(more)} more cell(s) than the header's {len(reader.fieldnames or [])}"
                    continue
                row = {k: v for k, v in rec.items() if v not in (None, "")}
                meta = row.get("meta")
                if isinstance(meta, str) and meta.lstrip().startswith("{"):
                    try:
                        row["meta"] = json.loads(meta)  # a meta column holds a JSON object as text
                    except json.JSONDecodeError as exc:
                        yield line, None, "meta: " + json_error(exc, meta)
                        continue
                yield line, row, None
        except csv.Error as exc:
            raise DataError(f"{p}: line {reader.line_num}: not readable as CSV: {exc}") from None


def _iter_parquet(p: Path) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        pf = pq.ParquetFile(p)
    except Exception as exc:
        raise DataError(f"{p}: not a readable Parquet file: {exc}") from None
    n = 0
    for batch in pf.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            n += 1
            yield n, _null_free(row), None


def _load_datasets_dir(p: Path) -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError(f"{p}: a dataset directory is read with the datasets package: pip install datasets") from None
    try:
        ds = datasets.load_from_disk(str(p))
    except Exception as exc:
        raise DataError(f"{p}: not a directory written by datasets' save_to_disk: {exc}") from None
    if isinstance(ds, datasets.DatasetDict):
        splits = sorted(ds)
        raise DataError(
            f"{p}: holds the splits {splits}; point 'data' at one of them, e.g. {p / splits[0]}"
            if splits
            else f"{p}: holds no split"
        )
    return ds


def _iter_datasets(p: Path) -> Iterator[Row]:
    ds = _load_datasets_dir(p)
    n = 0
    for batch in ds.with_format("arrow").iter(batch_size=1024):
        for row in batch.to_pylist():
            n += 1
            yield n, _null_free(row), None


_READERS = {"jsonl": _iter_jsonl, "csv": _iter_csv, "parquet": _iter_parquet, "datasets": _iter_datasets}


def iter_rows(path: str | Path) -> Iterator[Row]:
    """Yield ``(number, row, error)``: exactly one of row and error is set.

    Raises:
        DataError: the dataset is missing, of an unknown format, or unreadable as a whole.
    """
    p = Path(path)
    check_dataset(p)
    kind = _kind(p)
    if kind == "json":
        yield from (_iter_json_array(p) if _is_array(p) else _iter_jsonl(p))
        return
    if kind == "parquet" or kind == "csv":
        if not p.is_file():
            raise DataError(f"dataset not found: {p} is not a file")
    yield from _READERS[kind](p)


def count_rows(path: str | Path) -> int | None:
    """Number of rows, cheaply (non-empty lines, CSV records, array length, metadata); None if unknown."""
    p = Path(path)
    try:
        kind = _kind(p)
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(p).metadata.num_rows
        if kind == "datasets":
            return len(_load_datasets_dir(p))
        if kind == "csv":
            return sum(1 for _ in _iter_csv(p))
        if kind == "json" and _is_array(p):
            return len(json.loads(p.read_text(encoding="utf-8-sig", errors="replace")))
        n = 0
        with p.open("rb") as fh:
            for line in fh:
                if line.strip():
                    n += 1
        return n
    except Exception:
        return None
