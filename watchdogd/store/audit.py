"""The audit log (every decision with the numbers behind it) and webhook de-duplication."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from watchdogd.store.base import StoreBase, dumps
from watchdogd.store.records import AuditEvent

__all__ = [
    "MAX_AUDIT_DATA",
    "MAX_AUDIT_ITEMS",
    "MAX_AUDIT_TEXT",
    "AlertNews",
    "AuditStore",
    "bounded",
]

#: Caps on what one audit row keeps of its data: alert labels come from whoever holds the
#: token, and a 1 MiB webhook must not turn into 1 MiB rows that every /api/v1/events reads.
MAX_AUDIT_TEXT = 2048
MAX_AUDIT_ITEMS = 64
MAX_AUDIT_DATA = 16 * 1024


class AlertNews(StrEnum):
    """What one webhook alert is to the store."""

    NEW = "new"
    SEEN = "seen"  # a retry, a repeat or an HA peer's copy
    AFTER_RESOLVED = "after_resolved"  # a firing that arrived after its own resolution


_EVENTS_AFTER = (
    "SELECT * FROM audit WHERE (? IS NULL OR target = ?) AND (? IS NULL OR incident_id = ?) "
    "AND id > ? ORDER BY id LIMIT ?"
)
_EVENTS_BEFORE = (
    "SELECT * FROM audit WHERE (? IS NULL OR target = ?) AND (? IS NULL OR incident_id = ?) "
    "AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?"
)


def bounded(value: Any, depth: int = 0) -> Any:
    """``value`` with long strings cut to ``MAX_AUDIT_TEXT`` characters and dicts and lists
    cut to ``MAX_AUDIT_ITEMS`` entries, saying how much was cut."""
    if isinstance(value, str):
        if len(value) <= MAX_AUDIT_TEXT:
            return value
        return f"{value[:MAX_AUDIT_TEXT]}… ({len(value) - MAX_AUDIT_TEXT} more characters)"
    if depth > 8:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())
        kept = {bounded(str(k)): bounded(v, depth + 1) for k, v in items[:MAX_AUDIT_ITEMS]}
        if len(items) > MAX_AUDIT_ITEMS:
            kept["…"] = f"{len(items) - MAX_AUDIT_ITEMS} more entries"
        return kept
    if isinstance(value, list | tuple):
        kept_list = [bounded(v, depth + 1) for v in value[:MAX_AUDIT_ITEMS]]
        if len(value) > MAX_AUDIT_ITEMS:
            kept_list.append(f"… {len(value) - MAX_AUDIT_ITEMS} more entries")
        return kept_list
    return value


def _data_text(data: dict[str, Any]) -> str:
    """``data`` as stored: bounded, and a preview of its JSON if still over ``MAX_AUDIT_DATA``."""
    text = dumps(bounded(data))
    if len(text) <= MAX_AUDIT_DATA:
        return text
    return dumps({"truncated": True, "size": len(text), "preview": text[: MAX_AUDIT_DATA // 2]})


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
                (
                    self._clock(),
                    target,
                    kind,
                    bounded(message),
                    _data_text(data or {}),
                    incident_id,
                ),
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
        return self.remember_alerts([(fingerprint, starts_at, status)])[0] is not AlertNews.SEEN

    def remember_alerts(self, keys: Sequence[tuple[str, str, str]]) -> list[AlertNews]:
        """Record a webhook's (fingerprint, startsAt, status) keys in one transaction; for each,
        whether it is new, seen before, or a ``firing`` whose ``resolved`` came first.

        ``first_seen`` is refreshed on every sighting (the column keeps its schema-1 name): an
        alert that Alertmanager still repeats is never pruned by ``forget_alerts``."""
        now = self._clock()
        news: list[AlertNews] = []
        with self._db.write("remember alerts") as conn:
            for fingerprint, starts_at, status in keys:
                key = (fingerprint, starts_at, status)
                refreshed = conn.execute(
                    "UPDATE alerts_seen SET first_seen = ? "
                    "WHERE fingerprint = ? AND starts_at = ? AND status = ?",
                    (now, *key),
                )
                if refreshed.rowcount:
                    news.append(AlertNews.SEEN)
                    continue
                conn.execute(
                    "INSERT INTO alerts_seen (fingerprint, starts_at, status, first_seen) "
                    "VALUES (?, ?, ?, ?)",
                    (*key, now),
                )
                resolved = (
                    status == "firing"
                    and conn.execute(
                        "SELECT 1 FROM alerts_seen WHERE fingerprint = ? AND starts_at = ? "
                        "AND status = 'resolved'",
                        (fingerprint, starts_at),
                    ).fetchone()
                )
                news.append(AlertNews.AFTER_RESOLVED if resolved else AlertNews.NEW)
        return news

    def forget_alerts(self, older_than: float) -> int:
        """Drop de-duplication entries last seen before ``older_than``; returns how many."""
        with self._db.write("prune seen alerts") as conn:
            cursor = conn.execute("DELETE FROM alerts_seen WHERE first_seen < ?", (older_than,))
        return cursor.rowcount
