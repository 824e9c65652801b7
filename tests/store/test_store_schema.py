"""Opening the store: WAL mode, owner-only file, migrations run once and in order."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from watchdogd.errors import StoreError
from watchdogd.store import Store
from watchdogd.store.schema import MIGRATIONS


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


class TestOpen:
    def test_creates_and_migrates_an_empty_state_dir(self, tmp_path: Path) -> None:
        """A missing state dir and file are created and migrated to the latest version."""
        path = tmp_path / "new" / "dir" / "watchdogd.db"
        with Store(path) as store:
            assert store.schema_version == len(MIGRATIONS)
            assert store.writable
        assert _user_version(path) == len(MIGRATIONS)

    def test_uses_wal_and_an_owner_only_file(self, tmp_path: Path) -> None:
        """The database runs in WAL mode and nobody but its owner can read it."""
        with Store.in_state_dir(tmp_path) as store:
            assert store.path == tmp_path / "watchdogd.db"
        with sqlite3.connect(tmp_path / "watchdogd.db") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert stat.S_IMODE((tmp_path / "watchdogd.db").stat().st_mode) == 0o600

    def test_reopen_keeps_data_and_does_not_migrate_again(self, tmp_path: Path) -> None:
        """Data written before a restart is there after it."""
        path = tmp_path / "watchdogd.db"
        with Store(path) as store:
            store.audit("note", "before restart")
        with Store(path) as store:
            assert [e.message for e in store.events()] == ["before restart"]
            assert store.schema_version == len(MIGRATIONS)


class TestMigrations:
    def test_new_migrations_run_on_the_next_open(self, tmp_path: Path) -> None:
        """A database at version 1 is brought to version 2 by a newer list."""
        path = tmp_path / "m.db"
        first = ("CREATE TABLE a (x INTEGER);",)
        Store(path, migrations=first).close()
        assert _user_version(path) == 1
        Store(path, migrations=(*first, "CREATE TABLE b (y INTEGER);")).close()
        assert _user_version(path) == 2
        with sqlite3.connect(path) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"a", "b"} <= tables

    def test_a_failing_migration_is_rolled_back_whole(self, tmp_path: Path) -> None:
        """A migration that fails halfway leaves the previous version and no half-made table."""
        path = tmp_path / "m.db"
        broken = (
            "CREATE TABLE a (x INTEGER);",
            "CREATE TABLE b (y INTEGER); INSERT INTO no_such_table VALUES (1);",
        )
        with pytest.raises(StoreError, match="cannot open the database"):
            Store(path, migrations=broken)
        assert _user_version(path) == 1
        with sqlite3.connect(path) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "b" not in tables

    def test_a_newer_schema_is_refused(self, tmp_path: Path) -> None:
        """A database from a newer watchdogd is never touched by an older one."""
        path = tmp_path / "m.db"
        Store(path).close()
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
        with pytest.raises(StoreError, match="newer than this watchdogd"):
            Store(path)
