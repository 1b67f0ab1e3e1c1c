"""Streaming dataset readers: JSONL and Parquet, one row at a time.

Rows are yielded with their 1-based line (JSONL) or row (Parquet) number, so a bad row can be
reported precisely and the rest of the job goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from judge.core._errors import DataError

__all__ = ["Row", "count_rows", "iter_rows"]

Row = tuple[int, "dict[str, Any] | None", "str | None"]


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise DataError(f"{path}: unsupported dataset format {suffix!r}; use .jsonl or .parquet")


def iter_rows(path: str | Path) -> Iterator[Row]:
    """Yield ``(number, row, error)``: exactly one of row and error is set."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"dataset not found: {p}")
    if _kind(p) == "parquet":
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
                # Every Parquet row has every column: null there means "absent" (a pointwise row in
                # a table that also holds pairs), not an explicit null, so it must not be validated.
                yield n, {k: v for k, v in row.items() if v is not None}, None
        return
    with p.open("r", encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, None, f"invalid JSON: {exc.msg} at column {exc.colno}"
                continue
            if not isinstance(obj, dict):
                yield n, None, f"each line must be a JSON object, got {type(obj).__name__}"
                continue
            yield n, obj, None


def count_rows(path: str | Path) -> int | None:
    """Number of rows, cheaply (non-empty lines, or Parquet metadata); None if unknown."""
    p = Path(path)
    try:
        if _kind(p) == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(p).metadata.num_rows
        n = 0
        with p.open("rb") as fh:
            for line in fh:
                if line.strip():
                    n += 1
        return n
    except Exception:
        return None
