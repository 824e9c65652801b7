"""Incidents, the step journal, the audit log and alert de-duplication."""

from __future__ import annotations

import pytest
from store_fakes import FakeClock, release

from watchdogd.errors import StoreError
from watchdogd.model import Trigger, TriggerKind
from watchdogd.store import IncidentState, StepStatus, Store

TRIGGER = Trigger(
    kind=TriggerKind.GATE,
    name="probe:error_rate",
    reason="error rate 12.0% > 1.0% over 240 requests",
    numbers={"errors": 29, "requests": 240, "ratio": 0.12},
)


def open_incident(store: Store, *, dry_run: bool = False) -> str:
    record = store.create_incident(
        target="api",
        trigger=TRIGGER,
        bad_release=release("v2"),
        restore_release=release("v1"),
        dry_run=dry_run,
        actions=["notify", "rollback", "wait_healthy"],
    )
    return record.id


class TestIncidents:
    def test_create_and_read_back(self, store: Store, clock: FakeClock) -> None:
        """An incident keeps its trigger numbers, both releases (with spec) and its plan."""
        incident_id = open_incident(store)
        record = store.incident(incident_id)
        assert record is not None
        assert record.state is IncidentState.RUNNING
        assert record.trigger == TRIGGER
        assert record.bad_release == release("v2")
        assert record.restore_release is not None
        assert record.restore_release.spec == release("v1").spec
        assert record.actions == ("notify", "rollback", "wait_healthy")
        assert record.started_at == clock.now
        assert record.ended_at is None

    def test_open_incidents_are_the_running_ones(self, store: Store, clock: FakeClock) -> None:
        """Only running incidents are offered for resume, oldest first."""
        first = open_incident(store)
        clock.advance(1)
        second = open_incident(store)
        clock.advance(1)
        done = open_incident(store)
        store.finish_incident(done, IncidentState.SUCCEEDED, "rolled back to v1")
        assert [i.id for i in store.open_incidents()] == [first, second]
        finished = store.incident(done)
        assert finished is not None
        assert (finished.state, finished.ended_at, finished.detail) == (
            IncidentState.SUCCEEDED,
            clock.now,
            "rolled back to v1",
        )
        assert [i.id for i in store.incidents("api")] == [done, second, first]

    def test_to_dict_leaves_out_specs(self, store: Store) -> None:
        """The JSON form of an incident names releases in their one public form: without their
        spec (env, secrets)."""
        record = store.incident(open_incident(store))
        assert record is not None
        data = record.to_dict()
        assert data["restore_release"] == {
            "id": release("v1").id,
            "image": "sha256:v1",
            "image_ref": "registry.local/api:v1",
            "config_hash": release("v1").config_hash,
        }
        assert data["restore_release"] == release("v1").public()
        assert data["trigger"]["numbers"] == TRIGGER.numbers
        assert "VERSION" not in str(data)

    def test_finish_needs_a_final_state(self, store: Store) -> None:
        """``running`` is not an end."""
        with pytest.raises(ValueError, match="final"):
            store.finish_incident(open_incident(store), IncidentState.RUNNING)

    def test_recent_rollback_times(self, store: Store, clock: FakeClock) -> None:
        """Rollback times come from incidents since a point in time, dry runs left out."""
        open_incident(store)
        clock.advance(3600)
        since = clock.now
        clock.advance(10)
        open_incident(store)
        clock.advance(10)
        open_incident(store, dry_run=True)
        assert store.recent_rollback_times("api", since) == [since + 10]
        assert store.recent_rollback_times("web", 0) == []


class TestJournal:
    def test_start_then_finish(self, store: Store, clock: FakeClock) -> None:
        """A step is journaled started, then gets its final status and detail."""
        incident_id = open_incident(store)
        entry = store.step_started(incident_id, 0, "notify")
        assert (entry.status, entry.attempt, entry.ended_at) == (StepStatus.STARTED, 1, None)
        clock.advance(2)
        store.step_finished(incident_id, 0, StepStatus.SUCCEEDED, "sent to team")
        (entry,) = store.journal_for(incident_id)
        assert (entry.action, entry.status, entry.detail) == (
            "notify",
            StepStatus.SUCCEEDED,
            "sent to team",
        )
        assert entry.ended_at == entry.started_at + 2

    def test_each_attempt_counts(self, store: Store) -> None:
        """Starting the same step again counts an attempt and reopens it."""
        incident_id = open_incident(store)
        store.step_started(incident_id, 1, "rollback")
        store.step_finished(incident_id, 1, StepStatus.FAILED, "engine down")
        entry = store.step_started(incident_id, 1, "rollback", "attempt 1 failed: engine down")
        assert (entry.attempt, entry.status, entry.ended_at) == (2, StepStatus.STARTED, None)

    def test_skipped_is_final_in_one_write(self, store: Store) -> None:
        """A dry-run step is one row, already final."""
        incident_id = open_incident(store, dry_run=True)
        store.step_skipped(incident_id, 0, "rollback", "dry run")
        (entry,) = store.journal_for(incident_id)
        assert entry.status is StepStatus.SKIPPED
        assert entry.status.final

    def test_finishing_an_unstarted_step_is_an_error(self, store: Store) -> None:
        """The journal refuses an end without a start."""
        incident_id = open_incident(store)
        with pytest.raises(StoreError, match="never started"):
            store.step_finished(incident_id, 3, StepStatus.SUCCEEDED)
        with pytest.raises(ValueError, match="final"):
            store.step_finished(incident_id, 3, StepStatus.STARTED)

    def test_journal_needs_an_incident(self, store: Store) -> None:
        """A journal row for an unknown incident is refused by the foreign key."""
        with pytest.raises(StoreError, match="FOREIGN KEY"):
            store.step_started("no-such-incident", 0, "notify")


class TestAudit:
    def test_events_carry_their_numbers(self, store: Store) -> None:
        """An audit event keeps its kind, target, message and data."""
        event_id = store.audit(
            "breach", "error rate 12% > 1%", target="api", data={"ratio": 0.12, "n": 240}
        )
        (event,) = store.events()
        assert event.id == event_id
        assert (event.kind, event.target) == ("breach", "api")
        assert event.data == {"n": 240, "ratio": 0.12}

    def test_paging(self, store: Store) -> None:
        """Newest first by default, ``before_id`` pages back, ``after_id`` tails forward."""
        ids = [store.audit("note", f"m{n}", target="api" if n % 2 else "web") for n in range(6)]
        assert [e.id for e in store.events(limit=2)] == [ids[5], ids[4]]
        assert [e.id for e in store.events(limit=2, before_id=ids[4])] == [ids[3], ids[2]]
        assert [e.id for e in store.events(after_id=ids[1], limit=3)] == ids[2:5]
        assert [e.message for e in store.events(target="api")] == ["m5", "m3", "m1"]

    def test_events_of_one_incident(self, store: Store) -> None:
        """Events can be read per incident."""
        incident_id = open_incident(store)
        store.audit("step", "rollback started", target="api", incident_id=incident_id)
        store.audit("note", "unrelated", target="api")
        assert [e.message for e in store.events(incident_id=incident_id)] == ["rollback started"]


class TestAlertDedupe:
    def test_same_alert_is_new_once(self, store: Store) -> None:
        """A repeated (fingerprint, startsAt, status) is not new; a resolve of it is."""
        starts = "2024-05-01T10:00:00Z"
        assert store.remember_alert("abc", starts, "firing")
        assert not store.remember_alert("abc", starts, "firing")
        assert store.remember_alert("abc", starts, "resolved")
        assert store.remember_alert("abc", "2024-05-01T11:00:00Z", "firing")

    def test_forget_old_entries(self, store: Store, clock: FakeClock) -> None:
        """Entries older than a cut-off are dropped and can be new again."""
        store.remember_alert("abc", "t", "firing")
        clock.advance(100)
        store.remember_alert("def", "t", "firing")
        assert store.forget_alerts(clock.now - 50) == 1
        assert store.remember_alert("abc", "t", "firing")
        assert not store.remember_alert("def", "t", "firing")
