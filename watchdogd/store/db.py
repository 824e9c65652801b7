"""One SQLite connection with short transactions, sqlite3 errors wrapped, and write health.

Every call is one transaction under one lock, so the store can be used from the event loop or
from ``asyncio.to_thread`` alike. Any ``sqlite3.Error`` leaves here as ``StoreError`` with a
sentence that says what went wrong (read-only, disk full, locked, corrupt). A failed write flips
``writable`` to False and the next successful write flips it back: the daemon exports it as a
metric and will not start a rollback it cannot journal.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import structlog

from watchdogd.errors import SchemaTooNew, StoreError
from watchdogd.store.schema import MIGRATIONS, migrate, version

__all__ = ["Database"]

log = structlog.get_logger("watchdogd.store")

# sqlite's own error names (sqlite3.Error.sqlite_errorname) -> what an operator should read.
_EXPLANATIONS = {
    "SQLITE_READONLY": "the database is read-only (read-only filesystem or file permissions)",
    "SQLITE_FULL": "the disk is full",
    "SQLITE_CANTOPEN": "the database file cannot be opened (missing directory, permissions or "
    "a read-only filesystem)",
    "SQLITE_BUSY": "the database is locked by another process",
    "SQLITE_LOCKED": "the database is locked",
    "SQLITE_CORRUPT": "the database file is corrupt",
    "SQLITE_NOTADB": "the file is not a SQLite database",
    "SQLITE_IOERR": "an I/O error occurred",
    "SQLITE_PERM": "permission denied",
}

Params = Sequence[Any]


def _explain(err: sqlite3.Error) -> str:
    name = getattr(err, "sqlite_errorname", "") or ""
    base = name.split("_", 2)
    # Extended codes (SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED) share their primary's text.
    primary = "_".join(base[:2]) if len(base) > 1 else name
    explanation = _EXPLANATIONS.get(name) or _EXPLANATIONS.get(primary)
    return f"{explanation}: {err}" if explanation else str(err)


class Database:
    """The connection under a ``Store``. ``read_only`` opens an existing, migrated database
    with ``PRAGMA query_only`` (for the CLI next to a running daemon)."""

    def __init__(
        self,
        path: Path,
        *,
        read_only: bool = False,
        migrations: Sequence[str] = MIGRATIONS,
        on_error: Callable[[StoreError], None] | None = None,
    ) -> None:
        self.path = path
        self.read_only = read_only
        self._on_error = on_error
        self._lock = threading.Lock()
        self._writable = not read_only
        #: What SQLite last said about damage to the file (quick_check, or a corrupt page
        #: met by a query); None while the file is believed sound.
        self.damage: str | None = None
        self._conn = self._connect(migrations)

    # --- opening -----------------------------------------------------------------------------

    def _connect(self, migrations: Sequence[str]) -> sqlite3.Connection:
        if self.read_only and not self.path.exists():
            raise self._fail("open the database", f"{self.path} does not exist")
        try:
            if not self.read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # The file holds container specs (env included): owner-only, and sqlite gives
                # the -wal and -shm files the same mode.
                if not self.path.exists():
                    os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass  # created by someone else in between: sqlite opens it below
        except OSError as err:
            raise self._fail("create the database", str(err)) from err
        conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: no implicit transactions; every write spells out its own.
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=5.0
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            if self.read_only:
                conn.execute("PRAGMA query_only = ON")
                self._check_version(conn, len(migrations))
            else:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    log.warning("store_not_wal", path=str(self.path), journal_mode=mode)
                # FULL: a journal entry that was committed survives a power cut, not only a
                # crash of the process.
                conn.execute("PRAGMA synchronous = FULL")
                old = migrate(conn, migrations)
                if old != len(migrations):
                    log.info("store_migrated", path=str(self.path), old=old, new=len(migrations))
        except (sqlite3.Error, SchemaTooNew) as err:
            if conn is not None:
                conn.close()
            detail = _explain(err) if isinstance(err, sqlite3.Error) else str(err)
            raise self._fail("open the database", detail) from err
        return conn

    def _check_version(self, conn: sqlite3.Connection, latest: int) -> None:
        current = version(conn)
        if current != latest:
            raise SchemaTooNew(
                f"schema version {current}, this watchdogd expects {latest}; "
                "start the daemon once to migrate it"
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- health ------------------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self._writable

    def _set_writable(self, value: bool, reason: str = "") -> None:
        if value == self._writable:
            return
        self._writable = value
        if value:
            log.info("store_writable_again", path=str(self.path))
        else:
            log.error("store_not_writable", path=str(self.path), reason=reason)

    def check_directory(self) -> None:
        """Create and remove a file beside the database, by path. An open connection keeps
        writing through a mount that was remounted read-only, so only this notices a state
        directory a restart (or the CLI, or SQLite's own journal files) could no longer write.
        Raises ``StoreError`` and marks the store not writable."""
        probe = self.path.with_name(f".{self.path.name}.probe")
        try:
            os.close(os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
            os.unlink(probe)
        except OSError as err:
            detail = f"{self.path.parent}: {err.strerror}"
            self._set_writable(False, detail)
            raise self._fail("write to the state directory", detail) from err

    def check_integrity(self) -> str | None:
        """``PRAGMA quick_check``: None when the file is sound, else SQLite's first findings.
        A damaged page of one table leaves every other write working, so only this finds it
        before a rollback needs that table. Findings count as a store error."""
        try:
            with self._lock:
                rows = self._conn.execute("PRAGMA quick_check(5)").fetchall()
            findings = [str(row[0]) for row in rows if row[0] != "ok"]
        except sqlite3.Error as err:
            findings = [_explain(err)]
        if not findings:
            self.damage = None
            return None
        self.damage = "; ".join(findings)[:500]
        log.error("store_damaged", path=str(self.path), findings=self.damage)
        self._fail("verify the database", f"the database file is damaged: {self.damage}")
        return self.damage

    def _note_damage(self, err: sqlite3.Error) -> None:
        name = getattr(err, "sqlite_errorname", "") or ""
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            self.damage = _explain(err)[:500]

    def _fail(self, what: str, detail: str) -> StoreError:
        error = StoreError(f"state store {self.path}: cannot {what}: {detail}")
        if self._on_error is not None:
            self._on_error(error)
        return error

    # --- transactions ------------------------------------------------------------------------

    @contextmanager
    def write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE … COMMIT``; ``what`` completes "cannot …" in errors."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as err:
                detail = _explain(err)
                self._note_damage(err)
                self._set_writable(False, detail)
                raise self._fail(what, detail) from err
            if not self.read_only:
                self._set_writable(True)

    def read(self, what: str, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as err:
                self._note_damage(err)
                raise self._fail(what, _explain(err)) from err

    def read_one(self, what: str, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = self.read(what, sql, params)
        return rows[0] if rows else None

    @property
    def schema_version(self) -> int:
        with self._lock:
            return version(self._conn)
