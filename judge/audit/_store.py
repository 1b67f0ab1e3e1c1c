"""The audit store: one SQLite file (WAL) per project holding samples, labels, reviewers and overrides.

History is append-only. Label, reviewer and override rows are never updated or deleted (triggers
refuse it); a changed label is a new row, an undo is a row that names the label it retracts, and
:meth:`AuditStore.current_labels` reads the latest standing row per (sample, reviewer, phase).
Every write runs in its own ``BEGIN IMMEDIATE`` transaction with a long busy timeout, so several
processes (two review servers, a sampler and a reviewer) can write at once and lose nothing.

The schema is versioned (table ``schema_version``); opening an older file applies the missing
migrations in order, inside one transaction each.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from judge.audit._records import AuditSample, HumanLabel, Override, SamplingRun
from judge.audit._schema import MIGRATIONS, SCHEMA_VERSION
from judge.core._errors import JudgeloopError
from judge.core._records import stable_hash

__all__ = ["AuditStore", "AuditStoreError", "MIGRATIONS", "SCHEMA_VERSION"]


class AuditStoreError(JudgeloopError):
    """The audit store cannot be opened or a record is refused."""


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _unit(sample_id: str, salt: str) -> float:
    """A deterministic number in [0, 1) for a sample (a seeded draw that needs no shared state)."""
    return int(stable_hash([salt, sample_id])[:13], 16) / 16**13


class AuditStore:
    """The audit store of one project (see the module docstring).

    Args:
        path: the SQLite file; created (with its parent directory) when missing.
        timeout: seconds a writer waits for another writer's transaction before failing.
    """

    def __init__(self, path: str | Path, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    # -- connection and schema ------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
                conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError as exc:
                raise AuditStoreError(f"{self.path}: not a readable audit store ({exc})") from None
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now, so no read-then-write race
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def schema_version(self) -> int:
        """The schema version of the open file."""
        conn = self._conn()
        has = conn.execute("SELECT 1 FROM sqlite_master WHERE name='schema_version'").fetchone()
        return int(conn.execute("SELECT version FROM schema_version").fetchone()[0]) if has else 0

    def _migrate(self) -> None:
        with self._write() as conn:
            try:
                has = conn.execute("SELECT 1 FROM sqlite_master WHERE name='schema_version'").fetchone()
            except sqlite3.DatabaseError as exc:
                raise AuditStoreError(f"{self.path}: not a readable audit store ({exc})") from None
            version = int(conn.execute("SELECT version FROM schema_version").fetchone()[0]) if has else 0
            if version > SCHEMA_VERSION:
                raise AuditStoreError(
                    f"{self.path}: schema version {version} is newer than this judgeloop's {SCHEMA_VERSION}; upgrade judgeloop"
                )
            for v in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[v]):
                    conn.execute(statement)
                conn.execute("UPDATE schema_version SET version = ?", (v + 1,))

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- samples --------------------------------------------------------------------------------

    def add_samples(self, samples: list[AuditSample]) -> int:
        """Store samples; a sample whose id is already stored is left as it is. Returns how many were new."""
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO samples (sample_id, run_id, record) VALUES (?, ?, ?)",
                [(s.sample_id, s.run_id, s.model_dump_json()) for s in samples],
            )
            return conn.total_changes - before

    def sample(self, sample_id: str) -> AuditSample:
        """The sample with this id.

        Raises:
            AuditStoreError: no such sample.
        """
        row = self._conn().execute("SELECT record FROM samples WHERE sample_id = ?", (sample_id,)).fetchone()
        if row is None:
            raise AuditStoreError(f"{self.path}: no sample {sample_id!r}")
        return AuditSample.model_validate_json(row[0])

    def samples(self, run_id: str | None = None) -> list[AuditSample]:
        """Every sample (of one sampling run), in the order they were stored."""
        sql, args = "SELECT record FROM samples", ()
        if run_id is not None:
            sql, args = sql + " WHERE run_id = ?", (run_id,)
        return [AuditSample.model_validate_json(r[0]) for r in self._conn().execute(sql + " ORDER BY seq", args)]

    def add_run(self, run: SamplingRun) -> bool:
        """Store a sampling run's design (idempotent on run_id). True when new."""
        with self._write() as conn:
            before = conn.total_changes
            conn.execute("INSERT OR IGNORE INTO runs (run_id, record) VALUES (?, ?)", (run.run_id, run.model_dump_json()))
            return conn.total_changes > before

    def runs(self) -> list[SamplingRun]:
        """Every sampling run's design, oldest first."""
        return [SamplingRun.model_validate_json(r[0]) for r in self._conn().execute("SELECT record FROM runs ORDER BY seq")]

    # -- reviewers ------------------------------------------------------------------------------

    def add_reviewer(self, name: str) -> str:
        """Register a reviewer (or give one a further token) and return a new secret token.

        Only the token's SHA-256 is stored; the token itself is shown once, to the caller.
        """
        if not name or not name.strip():
            raise AuditStoreError("a reviewer needs a non-empty name")
        token = secrets.token_urlsafe(32)
        with self._write() as conn:
            conn.execute("INSERT INTO reviewers (name, token_hash) VALUES (?, ?)", (name.strip(), _token_hash(token)))
        return token

    def reviewers(self) -> list[str]:
        """The registered reviewer names, in registration order."""
        names = [r[0] for r in self._conn().execute("SELECT name FROM reviewers ORDER BY seq")]
        return list(dict.fromkeys(names))

    def reviewer_for_token(self, token: str) -> str | None:
        """The reviewer a token belongs to, or None. Compares every stored hash in constant time."""
        given = _token_hash(token or "")
        found = None
        for name, stored in self._conn().execute("SELECT name, token_hash FROM reviewers ORDER BY seq"):
            if hmac.compare_digest(given, stored) and found is None:  # no early exit: same work for every token
                found = name
        return found

    def redeem_token(self, token: str) -> str | None:
        """Spend a one-time login token: the reviewer it belongs to, or None if unknown or already used.

        The lookup and the spending happen in one write transaction, so two sign-ins racing with
        the same token cannot both succeed.
        """
        given = _token_hash(token or "")
        with self._write() as conn:
            found = None
            for name, stored in conn.execute("SELECT name, token_hash FROM reviewers ORDER BY seq"):
                if hmac.compare_digest(given, stored) and found is None:  # same work for every token
                    found = name
            if found is None:
                return None
            if conn.execute("SELECT 1 FROM token_uses WHERE token_hash = ?", (given,)).fetchone() is not None:
                return None
            conn.execute("INSERT INTO token_uses (token_hash, reviewer) VALUES (?, ?)", (given, found))
            return found

    # -- labels ---------------------------------------------------------------------------------

    def add_label(self, label: HumanLabel) -> None:
        """Append a label row (a label, a skip or an undo).

        Raises:
            AuditStoreError: the sample is unknown, the label id is taken, or an undo names a row
                of another sample or reviewer.
        """
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM samples WHERE sample_id = ?", (label.sample_id,)).fetchone() is None:
                raise AuditStoreError(f"label {label.label_id}: no sample {label.sample_id!r} in {self.path}")
            if label.undoes is not None:
                row = conn.execute(
                    "SELECT sample_id, reviewer FROM labels WHERE label_id = ?", (label.undoes,)
                ).fetchone()
                if row is None or tuple(row) != (label.sample_id, label.reviewer):
                    raise AuditStoreError(f"undo {label.label_id}: {label.undoes!r} is not a label of this sample and reviewer")
            try:
                conn.execute(
                    "INSERT INTO labels (label_id, sample_id, reviewer, phase, record, stored_at)"
                    " VALUES (?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    (label.label_id, label.sample_id, label.reviewer, label.phase, label.model_dump_json()),
                )
            except sqlite3.IntegrityError:
                raise AuditStoreError(f"label id {label.label_id!r} is already stored") from None

    def _add_label_if_new(self, label: HumanLabel) -> bool:
        """Append a label unless its id is stored (imports are idempotent). True when added."""
        with self._write() as conn:
            before = conn.total_changes
            conn.execute(
                "INSERT OR IGNORE INTO labels (label_id, sample_id, reviewer, phase, record, stored_at)"
                " VALUES (?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                (label.label_id, label.sample_id, label.reviewer, label.phase, label.model_dump_json()),
            )
            return conn.total_changes > before

    def labels(self, sample_id: str | None = None, reviewer: str | None = None) -> list[HumanLabel]:
        """The full label history (labels, skips, undos), in the order it was written."""
        where, args = [], []
        if sample_id is not None:
            where.append("sample_id = ?")
            args.append(sample_id)
        if reviewer is not None:
            where.append("reviewer = ?")
            args.append(reviewer)
        sql = "SELECT record FROM labels" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq"
        return [HumanLabel.model_validate_json(r[0]) for r in self._conn().execute(sql, args)]

    def current_labels(
        self, sample_id: str | None = None, reviewer: str | None = None, phase: str | None = None
    ) -> list[HumanLabel]:
        """The standing row per (sample, reviewer, phase): the latest label or skip that no undo retracted."""
        history = self.labels(sample_id, reviewer)
        undone = {lab.undoes for lab in history if lab.undoes is not None}
        current: dict[tuple[str, str, str], HumanLabel] = {}
        for lab in history:
            if lab.undoes is None and lab.label_id not in undone and (phase is None or lab.phase == phase):
                current[(lab.sample_id, lab.reviewer, lab.phase)] = lab
        return list(current.values())

    # -- queue ----------------------------------------------------------------------------------

    def _queue_state(self, reviewer: str, overlap: float) -> tuple[list[AuditSample], set[str], dict[str, set[str]]]:
        if not 0.0 <= overlap <= 1.0:
            raise AuditStoreError(f"overlap must be in [0, 1], got {overlap}")
        samples = self.samples()
        by_sample: dict[str, set[str]] = {}
        for lab in self.current_labels(phase="before_reveal"):
            by_sample.setdefault(lab.sample_id, set()).add(lab.reviewer)
        done = {sid for sid, who in by_sample.items() if reviewer in who}
        return samples, done, by_sample

    @staticmethod
    def reviews_wanted(sample_id: str, overlap: float) -> int:
        """How many reviewers a sample goes to: 2 for a seeded ``overlap`` share of samples, else 1."""
        return 2 if _unit(sample_id, "overlap") < overlap else 1

    def _open_for(self, reviewer: str, overlap: float) -> tuple[list[AuditSample], set[str]]:
        samples, done, by_sample = self._queue_state(reviewer, overlap)
        open_ = [
            s
            for s in samples
            if s.sample_id not in done and len(by_sample.get(s.sample_id, set())) < self.reviews_wanted(s.sample_id, overlap)
        ]
        # Overlap samples someone started come first (the ceiling needs them finished); otherwise a
        # per-reviewer seeded order, so reviewers working at once rarely draw the same sample.
        open_.sort(key=lambda s: (0 if by_sample.get(s.sample_id) else 1, _unit(s.sample_id, "order:" + reviewer)))
        return open_, {s.sample_id for s in samples if s.sample_id in done}

    def next_for(self, reviewer: str, overlap: float = 0.0) -> AuditSample | None:
        """The next sample for ``reviewer``: not yet labelled or skipped by them and still wanting reviews.

        Deterministic for a given store state. With ``overlap`` a seeded share of samples wants two
        reviewers (the human-human ceiling); the rest one.
        """
        open_, _ = self._open_for(reviewer, overlap)
        return open_[0] if open_ else None

    def progress(self, reviewer: str, overlap: float = 0.0) -> tuple[int, int]:
        """(samples this reviewer labelled or skipped, that plus the samples still open to them)."""
        open_, done = self._open_for(reviewer, overlap)
        return len(done), len(done) + len(open_)

    # -- overrides ------------------------------------------------------------------------------

    def add_override(self, o: Override) -> None:
        """Record a gate override (append-only)."""
        with self._write() as conn:
            conn.execute("INSERT INTO overrides (record) VALUES (?)", (o.model_dump_json(),))

    def overrides(self) -> list[Override]:
        """Every override, oldest first."""
        return [Override.model_validate_json(r[0]) for r in self._conn().execute("SELECT record FROM overrides ORDER BY seq")]

    # -- exchange (see judge.audit._exchange) ---------------------------------------------------

    def export_jsonl(self, path: str | Path) -> int:
        """Write samples, labels, overrides and run designs as JSONL (one ``{"type", "record"}`` per line). Returns rows."""
        from judge.audit._exchange import export_jsonl

        return export_jsonl(self, path)

    def import_jsonl(self, path: str | Path) -> int:
        """Read an :meth:`export_jsonl` file; rows already stored are skipped. Returns rows added."""
        from judge.audit._exchange import import_jsonl

        return import_jsonl(self, path)

    def export_csv(self, path: str | Path) -> int:
        """Write the label history as CSV, one row per label row. Returns rows."""
        from judge.audit._exchange import export_csv

        return export_csv(self, path)

    def import_csv(self, path: str | Path) -> int:
        """Read labels from an :meth:`export_csv` file; rows already stored are skipped. Returns rows added."""
        from judge.audit._exchange import import_csv

        return import_csv(self, path)

    def export_label_studio(self, path: str | Path) -> int:
        """Write the samples as Label Studio import tasks (and ``<path>.xml``, the labelling config). Returns tasks."""
        from judge.audit._exchange import export_label_studio

        return export_label_studio(self, path)

    def import_label_studio(self, path: str | Path) -> int:
        """Read a Label Studio JSON export back as before-reveal labels. Returns labels added."""
        from judge.audit._exchange import import_label_studio

        return import_label_studio(self, path)

    def __repr__(self) -> str:
        return f"AuditStore({str(self.path)!r})"


def _statements(script: str) -> list[str]:
    """The complete SQL statements of a script (a trigger body's inner ';' does not end it)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
