"""From dataset rows to items: column mapping, extra columns into ``meta``, repeated and duplicate ids.

Datasets come as people have them, so a row is read in three steps:

1. **Columns.** ``columns`` maps a field to the dataset's column for it (``{prompt: instruction,
   response: output}`` reads an AlpacaEval export). A row that lacks a mapped column (or holds a
   null there) is a reject that names the column. Unmapped fields are read by their own names.
2. **Extra columns.** Every other column (``source``, ``annotator``, ``generator``, a column named
   like a field that the mapping replaced...) is kept in the item's ``meta``. When the row also has
   an explicit ``meta`` object, the two are merged and *the explicit meta wins* on a shared key: it
   is what the dataset's author put there on purpose. The columns kept are counted once per job
   (:class:`DatasetReport`), not reported per row: an extra column is not an error.
3. **Ids.** A row whose id was seen before with the same texts is a *repeated row*: it is yielded
   again (the engine judges it once, as before) and counted. A row whose id was seen with
   *different* texts is a reject, "duplicate id X with different content (first seen at line N)":
   one id must name one item, or two judgments would share it. Ids and text hashes live in a
   scratch SQLite file, not in memory, so a dataset of any size streams in bounded memory.

A row is rejected only for what it lacks or gets wrong; the reasons are the validation errors.
The file formats themselves (JSONL, JSON arrays, CSV, Parquet, ``datasets`` directories) are read
by :mod:`judge.inputs._formats`, re-exported here.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from judge.core._records import Item
from judge.inputs._formats import Row, check_dataset, count_rows, iter_rows, json_error

__all__ = [
    "DatasetReport",
    "DuplicateIndex",
    "ItemReader",
    "Reject",
    "Row",
    "check_dataset",
    "count_rows",
    "iter_items",
    "iter_rows",
    "json_error",
    "shape_row",
    "validation_reason",
]

Reject = Callable[[int, "dict[str, Any] | None", str], None]

ITEM_FIELDS = frozenset(Item.model_fields)
# Distinct extra column names counted per job: a dataset whose rows carry arbitrary keys must not
# grow the report without bound.
_MAX_EXTRA_NAMES = 64


class DatasetReport(BaseModel):
    """What reading a dataset found: rows, items, rejects, repeated rows and extra columns."""

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(default=0, description="Rows read (blank lines are not rows).")
    items: int = Field(default=0, description="Valid items yielded, repeated rows included.")
    rejected: int = Field(default=0, description="Rows rejected, with their reasons in the rejects file.")
    repeated: int = Field(default=0, description="Rows repeating an earlier row's id and texts (judged once).")
    duplicate_ids: int = Field(default=0, description="Rejects whose id was seen before with other texts.")
    extra_columns: dict[str, int] = Field(
        default_factory=dict, description="Columns that are not fields, kept in meta: rows holding each."
    )
    first_reject: str | None = Field(default=None, description="The first reject's line and reason.")

    def nothing_to_judge(self, source: str, rejects: str) -> str:
        """Why a job that found no valid item did nothing: for the user, with where to look."""
        if self.rows == 0:
            return f"nothing to judge: {source} holds no rows"
        return (
            f"nothing to judge: all {self.rows} rows of {source} were rejected (listed in {rejects}); "
            f"first reject, {self.first_reject}"
        )

    def lines(self) -> list[str]:
        """Summary lines worth printing (none when there is nothing to say)."""
        out = []
        if self.extra_columns:
            out.append("  extra columns kept in meta: " + ", ".join(self.extra_columns))
        if self.repeated or self.duplicate_ids:
            out.append(
                f"  repeated rows {self.repeated} (judged once)   "
                f"duplicate ids with different content {self.duplicate_ids} (rejected)"
            )
        return out


def validation_reason(exc: pydantic.ValidationError) -> str:
    """A validation error as one line: ``field: message; field: message``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors(include_url=False)
    )


def shape_row(
    row: dict[str, Any], fields: Iterable[str], columns: dict[str, str] | None = None
) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """Rename a row's columns to ``fields`` and move the others into ``meta``.

    Args:
        row: the row as read.
        fields: the record's field names (``meta`` among them).
        columns: field -> column; fields not named here are read from the column of their own name.
            Mappings to names outside ``fields`` are ignored (a judge job ignores ``label``).

    Returns:
        ``(shaped, error, extra)``: the shaped row or the reason it cannot be, and the names of the
        columns moved into meta. On a shared key, an explicit ``meta`` object wins over a column.
    """
    fields = frozenset(fields)
    mapping = {f: c for f, c in (columns or {}).items() if f in fields}
    missing = [f"{c!r} (for {f})" for f, c in mapping.items() if c not in row]
    if missing:
        return None, "mapped column(s) missing or null: " + ", ".join(missing), []
    shaped = {f: row[c] for f, c in mapping.items()}
    used = set(mapping.values())
    extra: dict[str, Any] = {}
    for key, value in row.items():
        if key in used:
            continue
        if key in fields and key not in mapping:
            shaped[key] = value
        else:
            extra[key] = value
    if extra:
        meta = shaped.get("meta")
        if meta is not None and not isinstance(meta, dict):
            return None, f"meta: must be an object, got {type(meta).__name__}", []
        shaped["meta"] = {**extra, **(meta or {})}
    return shaped, None, list(extra)


def _typo_hint(extra: list[str]) -> str:
    """For a rejected row: extra columns that look like a misspelt field (kept in meta, so not read)."""
    guesses = [(c, m[0]) for c in extra if (m := difflib.get_close_matches(c, ITEM_FIELDS, n=1, cutoff=0.8))]
    if not guesses:
        return ""
    return " (" + ", ".join(f"column {c!r} is kept in meta: is it {f!r} misspelt?" for c, f in guesses) + ")"


class DuplicateIndex:
    """Ids seen so far with a hash of their content, in a scratch SQLite file (bounded memory).

    Args:
        directory: where the scratch file goes (beside the job's output); None = the system's temp dir.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".ids-", suffix=".sqlite", dir=directory)
        os.close(fd)
        self._path = Path(name)
        self._db = sqlite3.connect(name)
        # A scratch index, rebuilt by every read: durability would only cost time.
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-4096;"
            "CREATE TABLE ids (id TEXT PRIMARY KEY, digest BLOB NOT NULL, line INTEGER NOT NULL) WITHOUT ROWID;"
        )

    def see(self, item_id: str, content: str, line: int) -> tuple[bool, int] | None:
        """Record ``item_id``; None if new, else ``(same content, line first seen)``."""
        digest = hashlib.blake2b(content.encode("utf-8"), digest_size=16).digest()
        cur = self._db.execute("INSERT OR IGNORE INTO ids VALUES (?, ?, ?)", (item_id, digest, line))
        if cur.rowcount == 1:
            return None
        first_digest, first_line = self._db.execute(
            "SELECT digest, line FROM ids WHERE id = ?", (item_id,)
        ).fetchone()
        return first_digest == digest, first_line

    def close(self) -> None:
        """Drop the scratch file."""
        self._db.close()
        self._path.unlink(missing_ok=True)


class ItemReader:
    """Valid items of a dataset, streamed; each invalid row goes to ``on_reject`` with its reason.

    Args:
        path: the dataset (any format :func:`iter_rows` reads).
        check: why a valid item cannot be used (e.g. a field its rubric needs is missing), or None.
        limit: stop after this many valid items.
        on_reject: called with ``(line, row, error)`` for every rejected row.
        columns: field -> column mapping (``JobConfig.columns``; see the module docstring).
        scratch_dir: where the id index goes (beside the job's output); None = the system's temp dir.

    ``report`` (a :class:`DatasetReport`) holds the counts; it is complete once iteration ends.
    """

    def __init__(
        self,
        path: str | Path,
        check: Callable[[Item], str | None] | None = None,
        limit: int | None = None,
        on_reject: Reject | None = None,
        *,
        columns: dict[str, str] | None = None,
        scratch_dir: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.check = check
        self.limit = limit
        self.on_reject = on_reject
        self.columns = dict(columns or {})
        self.scratch_dir = scratch_dir
        self.report = DatasetReport()

    @property
    def rows(self) -> int:
        """Rows read so far."""
        return self.report.rows

    @property
    def items(self) -> int:
        """Valid items yielded so far."""
        return self.report.items

    def _reject(self, line: int, row: dict[str, Any] | None, error: str) -> None:
        self.report.rejected += 1
        if self.report.first_reject is None:
            self.report.first_reject = f"line {line}: {error}"
        if self.on_reject is not None:
            self.on_reject(line, row, error)

    def _count_extra(self, names: list[str]) -> None:
        counts = self.report.extra_columns
        for name in names:
            if name in counts:
                counts[name] += 1
            elif len(counts) < _MAX_EXTRA_NAMES:
                counts[name] = 1

    def _item(self, row: dict[str, Any]) -> tuple[Item | None, str | None, list[str]]:
        shaped, error, extra = shape_row(row, ITEM_FIELDS, self.columns)
        if error is not None or shaped is None:
            return None, error, []
        try:
            item = Item.model_validate(shaped)
        except pydantic.ValidationError as exc:
            return None, validation_reason(exc) + _typo_hint(extra), []
        error = self.check(item) if self.check is not None else None
        return item, error + _typo_hint(extra) if error else None, extra

    def __iter__(self) -> Iterator[Item]:
        index = DuplicateIndex(self.scratch_dir)
        try:
            for line, row, error in iter_rows(self.path):
                self.report.rows += 1
                item: Item | None = None
                extra: list[str] = []
                if error is None and row is not None:
                    item, error, extra = self._item(row)
                if item is not None and error is None:
                    seen = index.see(item.id, item.texts_hash(), line)
                    if seen is not None and not seen[0]:
                        self.report.duplicate_ids += 1
                        error = f"duplicate id {item.id!r} with different content (first seen at line {seen[1]})"
                    elif seen is not None:
                        self.report.repeated += 1
                if error is not None or item is None:
                    self._reject(line, row, error or "unreadable row")
                    continue
                self._count_extra(extra)
                self.report.items += 1
                yield item
                if self.limit is not None and self.report.items >= self.limit:
                    return
        finally:
            index.close()


def iter_items(
    path: str | Path,
    check: Callable[[Item], str | None] | None = None,
    limit: int | None = None,
    on_reject: Reject | None = None,
    *,
    columns: dict[str, str] | None = None,
    scratch_dir: str | Path | None = None,
) -> Iterator[Item]:
    """The valid items of a dataset (see :class:`ItemReader`)."""
    return iter(ItemReader(path, check, limit, on_reject, columns=columns, scratch_dir=scratch_dir))
