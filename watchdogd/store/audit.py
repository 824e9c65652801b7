"""The audit log (every decision with the numbers behind it) and webhook de-duplication."""

from __future__ import annotations

import json
from typing import Any

from watchdogd.store.base import StoreBase, dumps
from watchdogd.store.records import AuditEvent

__all__ = ["AuditStore"]


_EVENTS_AFTER = (
    "SELECT * FROM audit WHERE (? IS NULL OR target = ?) AND (? IS NULL OR incident_id = ?) "
    "AND id > ? ORDER BY id LIMIT ?"
)
_EVENTS_BEFORE = (
    "SELECT * FROM audit WHERE (? IS NULL OR target = ?) AND (? IS NULL OR incident_id = ?) "
    "AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?"
)


class AuditStore(StoreBase):
    """The store's audit log and alert de-duplication (a part of ``Store``)."""

    def audit(
        self,
        kind: str,
        message: str,
        *,
        target: str | None = None,
        data: dict[str, Any] | None = None,
        incident_id: str | None = None,
    ) -> int:
        """Record a decision and the numbers behind it; returns the event id."""
        with self._db.write("write the audit log") as conn:
            cursor = conn.execute(
                "INSERT INTO audit (at, target, kind, message, data, incident_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self._clock(), target, kind, message, dumps(data or {}), incident_id),
            )
        return cursor.lastrowid or 0

    def events(
        self,
        *,
        target: str | None = None,
        incident_id: str | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Audit events. With ``after_id``: the next ones in order (oldest first), for tailing.
        Otherwise the newest first, older than ``before_id`` if given, for paging back."""
        params = (target, target, incident_id, incident_id)
        if after_id is not None:
            rows = self._db.read("read the audit log", _EVENTS_AFTER, (*params, after_id, limit))
        else:
            before = (before_id, before_id)
            rows = self._db.read("read the audit log", _EVENTS_BEFORE, (*params, *before, limit))
        return [
            AuditEvent(
                id=row["id"],
                at=row["at"],
                target=row["target"],
                kind=row["kind"],
                message=row["message"],
                data=json.loads(row["data"]),
                incident_id=row["incident_id"],
            )
            for row in rows
        ]

    # --- webhook de-duplication --------------------------------------------------------------

    def remember_alert(self, fingerprint: str, starts_at: str, status: str) -> bool:
        """True the first time this (fingerprint, startsAt, status) is seen, False after."""
        with self._db.write("remember an alert") as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO alerts_seen (fingerprint, starts_at, status, first_seen) "
                "VALUES (?, ?, ?, ?)",
                (fingerprint, starts_at, status, self._clock()),
            )
        return cursor.rowcount == 1

    def forget_alerts(self, older_than: float) -> int:
        """Drop de-duplication entries first seen before ``older_than``; returns how many."""
        with self._db.write("prune seen alerts") as conn:
            cursor = conn.execute("DELETE FROM alerts_seen WHERE first_seen < ?", (older_than,))
        return cursor.rowcount
