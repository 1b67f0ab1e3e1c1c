"""Small file and SQLite helpers shared by the engine, the end-of-job step, juries and evals."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable

# Rows buffered before they go to SQLite in one statement.
CHUNK = 1000


def atomic_write(path: Path, text: str | Iterable[str]) -> None:
    """Write ``text`` (a string, or pieces of one streamed in order) to ``path`` all at once.

    The text goes to a temporary file beside ``path``, is fsynced, and is renamed over it: a reader
    sees the old file or the whole new one, never a part.
    """
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        for piece in [text] if isinstance(text, str) else text:
            fh.write(piece)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any, *, indent: int = 1, default: Any = None) -> None:
    """Write ``obj`` as UTF-8 JSON (one trailing newline) to ``path`` with :func:`atomic_write`."""
    atomic_write(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=default) + "\n")


class RowBuffer:
    """Rows for one SQLite table, inserted :data:`CHUNK` at a time.

    Args:
        conn: the connection.
        sql: the ``INSERT`` statement, with one ``?`` per column.
    """

    def __init__(self, conn: sqlite3.Connection, sql: str) -> None:
        self._conn = conn
        self._sql = sql
        self._rows: list[tuple[Any, ...]] = []

    def add(self, row: tuple[Any, ...]) -> None:
        self._rows.append(row)
        if len(self._rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            self._conn.executemany(self._sql, self._rows)
            self._rows = []
