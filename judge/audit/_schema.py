"""The audit store's schema, as an ordered list of migrations.

``MIGRATIONS[i]`` takes a version-``i`` file to version ``i + 1``; :class:`AuditStore` applies the
missing ones in order when it opens a file. Append new versions; never edit a released one.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

#: Schema of each version; MIGRATIONS[i] takes a version-i file to version i+1.
MIGRATIONS: list[str] = [
    # v1: samples and labels only.
    """
    CREATE TABLE schema_version (version INTEGER NOT NULL);
    INSERT INTO schema_version VALUES (0);
    CREATE TABLE samples (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        sample_id TEXT NOT NULL UNIQUE,
        run_id TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE TABLE labels (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        label_id TEXT NOT NULL UNIQUE,
        sample_id TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        phase TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX labels_by_sample ON labels (sample_id, reviewer, phase);
    """,
    # v2: reviewers (token hashes), overrides, stored-at times, and the append-only triggers.
    """
    ALTER TABLE labels ADD COLUMN stored_at TEXT NOT NULL DEFAULT '';
    CREATE TABLE reviewers (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TABLE overrides (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        record TEXT NOT NULL
    );
    CREATE TRIGGER labels_no_update BEFORE UPDATE ON labels
        BEGIN SELECT RAISE(ABORT, 'audit labels are append-only'); END;
    CREATE TRIGGER labels_no_delete BEFORE DELETE ON labels
        BEGIN SELECT RAISE(ABORT, 'audit labels are append-only'); END;
    CREATE TRIGGER overrides_no_update BEFORE UPDATE ON overrides
        BEGIN SELECT RAISE(ABORT, 'overrides are append-only'); END;
    CREATE TRIGGER overrides_no_delete BEFORE DELETE ON overrides
        BEGIN SELECT RAISE(ABORT, 'overrides are append-only'); END;
    CREATE TRIGGER reviewers_no_update BEFORE UPDATE ON reviewers
        BEGIN SELECT RAISE(ABORT, 'reviewers are append-only'); END;
    """,
    # v3: spent login tokens (a token is good for one sign-in; the row makes a second use fail).
    """
    CREATE TABLE token_uses (
        token_hash TEXT PRIMARY KEY,
        reviewer TEXT NOT NULL,
        used_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TRIGGER token_uses_no_update BEFORE UPDATE ON token_uses
        BEGIN SELECT RAISE(ABORT, 'token uses are append-only'); END;
    CREATE TRIGGER token_uses_no_delete BEFORE DELETE ON token_uses
        BEGIN SELECT RAISE(ABORT, 'token uses are append-only'); END;
    """,
    # v4: the design of each sampling run (population sizes and judge sums, for the estimates).
    """
    CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL UNIQUE,
        record TEXT NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
