"""The judgment cache and the output ledger: SQLite stores that make every request idempotent.

Two stores, both SQLite in WAL mode (readers never block the writer; a killed process leaves them
consistent):

- :class:`JudgmentCache`: content-addressed, ``request key -> Judgment JSON``. The key already
  hashes the rubric, the judge's fingerprint, the sampling parameters and the prompt, so the same
  key always means the same judgment, and a cache may be shared by any number of jobs. A request
  whose key is in the cache is never sent to a judge again: a rerun rebuilds its output from the
  cache, without loading a model.
- :class:`OutputLedger`: which *slots* one job's output file already holds, and the byte offset of
  the output up to which the ledger is known to be in step with it. A slot is a request key for one
  item (:func:`output_slot`): two items with different ids and the same texts share a request key
  (judged once) but each gets its own judgment in the output. The output file stays the source of
  truth (it is appended and fsynced first); the ledger lets a resumed job skip written requests
  without reading every key into memory, and is rebuilt from the file whenever they disagree.

Neither store keeps anything in memory that grows with the dataset.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Callable, Iterable, Iterator

__all__ = ["FAILED", "JudgmentCache", "OutputLedger", "line_slot", "output_slot"]

_CHUNK = 1000

#: The ledger's run number of a slot whose request failed: in the output, to be retried (a rebuilt
#: ledger files what it found under run 0, so the marker is below that).
FAILED = -1

_UPSERT = "INSERT INTO ledger (key, run) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET run = excluded.run"


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a crash of the process never loses a commit; a power loss may lose the
    # last ones, which the output file (fsynced first) restores on the next run.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def output_slot(key: str, item_id: str) -> str:
    """The place of one item's judgment of request ``key`` in an output."""
    return f"{key}/{item_id}"


def line_slot(line: bytes) -> tuple[str, str] | None:
    """``(request key, slot)`` of one JSON line of an output file, or None if it is not a judgment."""
    try:
        obj = json.loads(line)
        key, item_id = obj["key"], obj["item_id"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        return None
    if not isinstance(key, str) or not isinstance(item_id, str):
        return None
    return key, output_slot(key, item_id)


class JudgmentCache:
    """Request key -> Judgment JSON, in one SQLite file that jobs may share.

    Args:
        path: the SQLite file (created if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = _connect(self.path)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, judgment TEXT NOT NULL) WITHOUT ROWID"
        )

    def get(self, key: str) -> str | None:
        """The judgment JSON stored under ``key``, or None."""
        row = self._conn.execute("SELECT judgment FROM judgments WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def __contains__(self, key: object) -> bool:
        return self._conn.execute("SELECT 1 FROM judgments WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM judgments").fetchone()[0])

    def put_many(self, entries: Iterable[tuple[str, str]]) -> None:
        """Store ``(key, judgment JSON)`` pairs; a key already present keeps its first judgment."""
        rows = list(entries)
        if not rows:
            return
        with self._transaction():
            self._conn.executemany("INSERT OR IGNORE INTO judgments (key, judgment) VALUES (?, ?)", rows)

    def keys(self) -> Iterator[str]:
        """Every key, streamed."""
        for (key,) in self._conn.execute("SELECT key FROM judgments"):
            yield key

    def _transaction(self) -> "_Tx":
        return _Tx(self._conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "JudgmentCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Tx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


class OutputLedger:
    """Which slots (:func:`output_slot`) an append-only output file holds, without holding them in memory.

    Each run of a job gets a run number; :meth:`lookup` tells a slot written by an earlier run
    (resumed work) from one written by this run (a duplicate request within the job).

    Args:
        path: the SQLite file (created if missing); one per output file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = _connect(self.path)
        self._conn.execute("CREATE TABLE IF NOT EXISTS ledger (key TEXT PRIMARY KEY, run INTEGER NOT NULL) WITHOUT ROWID")
        self._conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.run = 0

    # -- meta

    def _meta(self, name: str, default: str = "") -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else default

    def _set_meta(self, values: dict[str, object]) -> None:
        self._conn.executemany(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [(k, str(v)) for k, v in values.items()],
        )

    # -- lifecycle

    def sync(
        self,
        output: str | Path,
        on_lines: Callable[[list[tuple[str, str]]], None] | None = None,
        failed: Callable[[str], bool] | None = None,
    ) -> int:
        """Bring the ledger in step with ``output`` and start a new run; return the lines read.

        Only the part of the file past the last recorded offset is read, unless the file no longer
        matches what the ledger recorded (replaced, shortened, deleted): then the ledger is rebuilt
        from the whole file. A torn or unreadable line (a crash mid-write) and everything after it
        is cut off the file, as those judgments were never acknowledged.

        Args:
            output: the append-only output file (it may not exist yet).
            on_lines: called with chunks of ``(request key, line)`` read from the file (e.g. to refill a
                cache that was deleted).
            failed: tells a line whose request failed (recorded as :data:`FAILED`, so it is retried).
        """
        p = Path(output)
        offset = int(self._meta("offset", "0"))
        tail_len = int(self._meta("tail_len", "0"))
        tail_hash = self._meta("tail_hash")
        start = 0
        if p.exists() and offset > 0 and tail_len > 0 and p.stat().st_size >= offset:
            with p.open("rb") as fh:
                fh.seek(offset - tail_len)
                if hashlib.sha256(fh.read(tail_len)).hexdigest() == tail_hash:
                    start = offset
        with _Tx(self._conn):
            if start == 0:
                self._conn.execute("DELETE FROM ledger")
                self._set_meta({"offset": 0, "tail_len": 0, "tail_hash": ""})
            self.run = int(self._meta("run", "0")) + 1
            self._set_meta({"run": self.run})
        if not p.exists():
            return 0
        read = 0
        good = start
        last = b""
        chunk: list[tuple[str, str, str]] = []
        with p.open("rb") as fh:
            fh.seek(start)
            for line in fh:
                found = line_slot(line) if line.endswith(b"\n") else None
                if found is None:
                    break
                good += len(line)
                last = line
                read += 1
                chunk.append((*found, line.decode("utf-8").rstrip("\n")))
                if len(chunk) >= _CHUNK:
                    self._add(chunk, good, last, self.run - 1, on_lines, failed)
                    chunk = []
        self._add(chunk, good, last, self.run - 1, on_lines, failed)
        if good != p.stat().st_size:
            with p.open("r+b") as fh:
                fh.truncate(good)
                fh.flush()
        return read

    def _add(
        self,
        chunk: list[tuple[str, str, str]],
        offset: int,
        last: bytes,
        run: int,
        on_lines: Callable[[list[tuple[str, str]]], None] | None,
        failed: Callable[[str], bool] | None = None,
    ) -> None:
        if not chunk:
            return
        if on_lines is not None:
            on_lines([(key, line) for key, _, line in chunk])
        with _Tx(self._conn):
            # The later line of a slot wins: a failed request retried by a later run is written again.
            self._conn.executemany(
                _UPSERT,
                [(slot, FAILED if failed is not None and failed(line) else run) for _, slot, line in chunk],
            )
            self._set_meta(
                {"offset": offset, "tail_len": len(last), "tail_hash": hashlib.sha256(last).hexdigest()}
            )

    def record(self, slots: list[str], offset: int, last_line: bytes, failed: Iterable[str] = ()) -> None:
        """Note that ``slots`` are now durably in the output, which ends at ``offset`` with ``last_line``.

        Slots in ``failed`` hold a request that failed (a backend error): :meth:`lookup` returns
        :data:`FAILED` for them, so a later run retries them.
        """
        if not slots:
            return
        bad = set(failed)
        with _Tx(self._conn):
            self._conn.executemany(_UPSERT, [(s, FAILED if s in bad else self.run) for s in slots])
            self._set_meta(
                {"offset": offset, "tail_len": len(last_line), "tail_hash": hashlib.sha256(last_line).hexdigest()}
            )

    # -- queries

    def lookup(self, slot: str) -> int | None:
        """The run that wrote ``slot`` to the output, :data:`FAILED` if it failed, None if it is not there."""
        row = self._conn.execute("SELECT run FROM ledger WHERE key = ?", (slot,)).fetchone()
        return int(row[0]) if row else None

    def __contains__(self, key: object) -> bool:
        return self._conn.execute("SELECT 1 FROM ledger WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "OutputLedger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
