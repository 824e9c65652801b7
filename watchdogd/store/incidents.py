"""Incidents and their step journal: what makes a playbook run exactly once.

A journal row per (incident, step): written ``started`` and committed before the step acts,
then updated to its final status. ``attempt`` counts the tries, across restarts too. A row
still ``started`` after a restart marks a step that was in flight when watchdogd stopped.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence

from watchdogd.errors import StoreError
from watchdogd.model import Release, Trigger, TriggerKind
from watchdogd.store.base import StoreBase, dumps
from watchdogd.store.records import IncidentRecord, IncidentState, JournalEntry, StepStatus

__all__ = ["IncidentStore"]


class IncidentStore(StoreBase):
    """The store's incidents and step journal (a part of ``Store``)."""

    def create_incident(
        self,
        *,
        target: str,
        trigger: Trigger,
        bad_release: Release | None,
        restore_release: Release | None,
        dry_run: bool = False,
        actions: Sequence[str] = (),
        incident_id: str | None = None,
    ) -> IncidentRecord:
        """Open an incident in state ``running``. ``actions`` names the playbook's steps in
        order, so a resume can tell whether the playbook changed since."""
        incident_id = incident_id or str(uuid.uuid4())
        with self._db.write("create an incident") as conn:
            conn.execute(
                "INSERT INTO incidents (id, target, trigger_kind, trigger_name, trigger_reason, "
                "trigger_numbers, bad_release, restore_release, state, started_at, dry_run, "
                "actions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (
                    incident_id,
                    target,
                    trigger.kind.value,
                    trigger.name,
                    trigger.reason,
                    dumps(trigger.numbers),
                    bad_release.to_json() if bad_release else None,
                    restore_release.to_json() if restore_release else None,
                    self._clock(),
                    int(dry_run),
                    dumps(list(actions)),
                ),
            )
            row = conn.execute("SELECT * FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return _incident_record(row)

    def incident(self, incident_id: str) -> IncidentRecord | None:
        row = self._db.read_one(
            "read an incident", "SELECT * FROM incidents WHERE id = ?", (incident_id,)
        )
        return None if row is None else _incident_record(row)

    def incidents(self, target: str | None = None, *, limit: int = 50) -> list[IncidentRecord]:
        """Incidents, newest first."""
        rows = self._db.read(
            "read incidents",
            "SELECT * FROM incidents WHERE ? IS NULL OR target = ? "
            "ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (target, target, limit),
        )
        return [_incident_record(row) for row in rows]

    def open_incidents(self, target: str | None = None) -> list[IncidentRecord]:
        """Incidents still ``running``: after a restart, the ones to resume. Oldest first."""
        rows = self._db.read(
            "read open incidents",
            "SELECT * FROM incidents WHERE state = 'running' AND (? IS NULL OR target = ?) "
            "ORDER BY started_at, rowid",
            (target, target),
        )
        return [_incident_record(row) for row in rows]

    def finish_incident(self, incident_id: str, state: IncidentState, detail: str = "") -> None:
        if state is IncidentState.RUNNING:
            raise ValueError("finish_incident needs a final state")
        with self._db.write("finish an incident") as conn:
            conn.execute(
                "UPDATE incidents SET state = ?, ended_at = ?, detail = ? WHERE id = ?",
                (state.value, self._clock(), detail, incident_id),
            )

    def recent_rollback_times(self, target: str, since: float) -> list[float]:
        """Start times of the target's real (not dry-run) playbooks since ``since``, oldest
        first: for the cooldown and the per-hour limit."""
        rows = self._db.read(
            "read recent rollbacks",
            "SELECT started_at FROM incidents WHERE target = ? AND dry_run = 0 "
            "AND started_at >= ? ORDER BY started_at",
            (target, since),
        )
        return [float(row["started_at"]) for row in rows]

    def step_started(
        self, incident_id: str, step_index: int, action: str, detail: str = ""
    ) -> JournalEntry:
        """Journal that a step (or its next attempt) is about to act; committed on return."""
        with self._db.write("journal a step start") as conn:
            conn.execute(
                "INSERT INTO journal (incident_id, step_index, action, attempt, status, "
                "started_at, detail) VALUES (?, ?, ?, 1, 'started', ?, ?) "
                "ON CONFLICT (incident_id, step_index) DO UPDATE SET attempt = attempt + 1, "
                "status = 'started', ended_at = NULL, detail = excluded.detail",
                (incident_id, step_index, action, self._clock(), detail),
            )
            row = conn.execute(
                "SELECT * FROM journal WHERE incident_id = ? AND step_index = ?",
                (incident_id, step_index),
            ).fetchone()
        return _journal_entry(row)

    def step_finished(
        self, incident_id: str, step_index: int, status: StepStatus, detail: str = ""
    ) -> None:
        """Journal a started step's end (``succeeded``, ``failed`` or ``interrupted``)."""
        if not status.final:
            raise ValueError("step_finished needs a final status")
        with self._db.write("journal a step end") as conn:
            cursor = conn.execute(
                "UPDATE journal SET status = ?, ended_at = ?, detail = ? "
                "WHERE incident_id = ? AND step_index = ?",
                (status.value, self._clock(), detail, incident_id, step_index),
            )
        if cursor.rowcount == 0:
            raise StoreError(f"step {step_index} of incident {incident_id} was never started")

    def step_skipped(self, incident_id: str, step_index: int, action: str, detail: str) -> None:
        """Journal a step that will not run (dry run) in one final row."""
        now = self._clock()
        with self._db.write("journal a skipped step") as conn:
            conn.execute(
                "INSERT INTO journal (incident_id, step_index, action, attempt, status, "
                "started_at, ended_at, detail) VALUES (?, ?, ?, 0, 'skipped', ?, ?, ?) "
                "ON CONFLICT (incident_id, step_index) DO UPDATE SET status = 'skipped', "
                "ended_at = excluded.ended_at, detail = excluded.detail",
                (incident_id, step_index, action, now, now, detail),
            )

    def journal_for(self, incident_id: str) -> list[JournalEntry]:
        rows = self._db.read(
            "read the journal",
            "SELECT * FROM journal WHERE incident_id = ? ORDER BY step_index",
            (incident_id,),
        )
        return [_journal_entry(row) for row in rows]


def _incident_record(row: sqlite3.Row) -> IncidentRecord:
    def release(text: str | None) -> Release | None:
        return None if text is None else Release.from_json(text)

    return IncidentRecord(
        id=row["id"],
        target=row["target"],
        trigger=Trigger(
            kind=TriggerKind(row["trigger_kind"]),
            name=row["trigger_name"],
            reason=row["trigger_reason"],
            numbers=json.loads(row["trigger_numbers"]),
        ),
        bad_release=release(row["bad_release"]),
        restore_release=release(row["restore_release"]),
        state=IncidentState(row["state"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        dry_run=bool(row["dry_run"]),
        actions=tuple(json.loads(row["actions"])),
        detail=row["detail"],
    )


def _journal_entry(row: sqlite3.Row) -> JournalEntry:
    return JournalEntry(
        incident_id=row["incident_id"],
        step_index=row["step_index"],
        action=row["action"],
        attempt=row["attempt"],
        status=StepStatus(row["status"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        detail=row["detail"],
    )
