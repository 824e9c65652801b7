"""The state store: releases and known-good, quarantine, incidents with their step journal, the
audit log and webhook de-duplication, in one SQLite file in ``state_dir``.

Each method is one short transaction; see ``db`` for locking, error wrapping and write health.
Nothing here redacts: callers hand over text that is already free of secrets. The one
exception by necessity is ``Release.spec`` (a container's configuration, env included), which
a rollback needs; the file is created owner-only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from watchdogd.errors import StoreError
from watchdogd.store.audit import AuditStore
from watchdogd.store.db import Database
from watchdogd.store.deploys import DeployStore
from watchdogd.store.incidents import IncidentStore
from watchdogd.store.releases import ReleaseStore
from watchdogd.store.schema import MIGRATIONS

__all__ = ["DB_FILENAME", "Store"]

DB_FILENAME = "watchdogd.db"


class Store(ReleaseStore, IncidentStore, AuditStore, DeployStore):
    """Typed access to the state store, opened (and migrated) on construction.

    ``clock`` gives wall-clock seconds. ``read_only`` opens an existing, migrated database
    without writing (``PRAGMA query_only``), e.g. for the CLI next to a running daemon.
    ``on_error`` is called with every ``StoreError`` before it is raised (for a metric).
    Raises ``StoreError`` when the database cannot be opened or migrated.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        read_only: bool = False,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[StoreError], None] | None = None,
        migrations: Sequence[str] = MIGRATIONS,
    ) -> None:
        db = Database(Path(path), read_only=read_only, migrations=migrations, on_error=on_error)
        super().__init__(db, clock)

    @classmethod
    def in_state_dir(cls, state_dir: Path, **kwargs: Any) -> Store:
        return cls(state_dir / DB_FILENAME, **kwargs)

    @property
    def path(self) -> Path:
        return self._db.path

    @property
    def writable(self) -> bool:
        """False since the last write failed, until one succeeds again."""
        return self._db.writable

    @property
    def damage(self) -> str | None:
        """SQLite's findings about a damaged file, or None (see ``check_integrity``)."""
        return self._db.damage

    def check_integrity(self) -> str | None:
        """Verify the whole file (``PRAGMA quick_check``); returns the findings or None.
        Never raises."""
        return self._db.check_integrity()

    @property
    def schema_version(self) -> int:
        return self._db.schema_version

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def check_writable(self) -> bool:
        """Probe the state directory by path, then with a one-row write; updates and returns
        ``writable``. Never raises."""
        try:
            if not self._db.read_only:  # a read-only store (the CLI's) creates no files
                self._db.check_directory()
            with self._db.write("write the probe row") as conn:
                conn.execute(
                    "INSERT INTO write_probe (id, at) VALUES (1, ?) "
                    "ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                    (self._clock(),),
                )
        except StoreError:
            return False
        return self.writable
