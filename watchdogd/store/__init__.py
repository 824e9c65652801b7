"""The SQLite state store in ``state_dir``: see ``store.Store``."""

from watchdogd.store.records import (
    AuditEvent,
    IncidentRecord,
    IncidentState,
    JournalEntry,
    QuarantineEntry,
    ReleaseRecord,
    ReleaseState,
    StepStatus,
)
from watchdogd.store.store import DB_FILENAME, Store

__all__ = [
    "DB_FILENAME",
    "AuditEvent",
    "IncidentRecord",
    "IncidentState",
    "JournalEntry",
    "QuarantineEntry",
    "ReleaseRecord",
    "ReleaseState",
    "StepStatus",
    "Store",
]
