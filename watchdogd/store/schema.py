"""The store's schema as an append-only list of migrations, tracked in ``PRAGMA user_version``.

``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``. A released migration is
never edited: a change to the schema is a new entry at the end. Each migration runs in its own
transaction together with the ``user_version`` bump, so a crash mid-migration leaves the
database at the version before it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from watchdogd.errors import SchemaTooNew

__all__ = ["MIGRATIONS", "migrate", "version"]

MIGRATIONS: tuple[str, ...] = (
    # 1: releases, quarantine, incidents with their step journal, audit log, alert dedupe.
    """
    CREATE TABLE releases (
        target        TEXT NOT NULL,
        release_id    TEXT NOT NULL,
        image         TEXT NOT NULL,
        config_hash   TEXT NOT NULL,
        image_ref     TEXT NOT NULL DEFAULT '',
        spec_json     TEXT NOT NULL DEFAULT '{}',
        first_seen    REAL NOT NULL,
        last_seen     REAL NOT NULL,
        state         TEXT NOT NULL
                      CHECK (state IN ('baking', 'known_good', 'bad', 'quarantined')),
        known_good_at REAL,
        PRIMARY KEY (target, release_id)
    );
    CREATE INDEX releases_by_last_seen ON releases (target, last_seen);

    CREATE TABLE quarantine (
        target      TEXT NOT NULL,
        image       TEXT NOT NULL,
        reason      TEXT NOT NULL,
        at          REAL NOT NULL,
        incident_id TEXT,
        PRIMARY KEY (target, image)
    );

    CREATE TABLE incidents (
        id               TEXT PRIMARY KEY,
        target           TEXT NOT NULL,
        trigger_kind     TEXT NOT NULL,
        trigger_name     TEXT NOT NULL,
        trigger_reason   TEXT NOT NULL,
        trigger_numbers  TEXT NOT NULL DEFAULT '{}',
        bad_release      TEXT,
        restore_release  TEXT,
        state            TEXT NOT NULL
                         CHECK (state IN ('running', 'succeeded', 'failed', 'aborted')),
        started_at       REAL NOT NULL,
        ended_at         REAL,
        dry_run          INTEGER NOT NULL DEFAULT 0,
        actions          TEXT NOT NULL DEFAULT '[]',
        detail           TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX incidents_by_target ON incidents (target, started_at);
    CREATE INDEX incidents_running ON incidents (state) WHERE state = 'running';

    CREATE TABLE journal (
        incident_id TEXT NOT NULL REFERENCES incidents (id),
        step_index  INTEGER NOT NULL,
        action      TEXT NOT NULL,
        attempt     INTEGER NOT NULL,
        status      TEXT NOT NULL
                    CHECK (status IN ('started', 'succeeded', 'failed', 'skipped', 'interrupted')),
        started_at  REAL NOT NULL,
        ended_at    REAL,
        detail      TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (incident_id, step_index)
    );

    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          REAL NOT NULL,
        target      TEXT,
        kind        TEXT NOT NULL,
        message     TEXT NOT NULL,
        data        TEXT NOT NULL DEFAULT '{}',
        incident_id TEXT
    );
    CREATE INDEX audit_by_target ON audit (target, id);

    CREATE TABLE alerts_seen (
        fingerprint TEXT NOT NULL,
        starts_at   TEXT NOT NULL,
        status      TEXT NOT NULL,
        first_seen  REAL NOT NULL,
        PRIMARY KEY (fingerprint, starts_at, status)
    );

    -- One row, rewritten by Store.check_writable() to learn whether writes still land.
    CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL NOT NULL);
    """,
    # 2: blue-green deploys, journaled stage by stage (watchdogd/store/deploys.py).
    """
    CREATE TABLE deploys (
        id          TEXT PRIMARY KEY,
        target      TEXT NOT NULL,
        image       TEXT NOT NULL,
        stage       TEXT NOT NULL,
        started_at  REAL NOT NULL,
        updated_at  REAL NOT NULL,
        ended_at    REAL,
        reason      TEXT NOT NULL DEFAULT '',
        body        TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX deploys_by_target ON deploys (target, started_at);
    """,
)


def version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Bring ``conn`` (in autocommit mode) up to ``len(migrations)``; return the old version.

    Raises ``sqlite3.Error`` when a migration fails (that migration is rolled back) and
    ``SchemaTooNew`` when the database is ahead of this code: never downgrade silently.
    """
    current = version(conn)
    if current > len(migrations):
        raise SchemaTooNew(
            f"schema version {current} is newer than this watchdogd knows "
            f"({len(migrations)}); refusing to touch it"
        )
    for number in range(current, len(migrations)):
        # executescript() would COMMIT first and then run each statement in autocommit, so
        # the transaction is spelled out and the version bump sits inside it.
        script = f"BEGIN IMMEDIATE;\n{migrations[number]}\nPRAGMA user_version = {number + 1};"
        try:
            conn.executescript(script)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return current
