"""Exactly once across a crash: the runner is cancelled mid-step (as a SIGKILL leaves the
journal) and a new runner on a new connection to the same database resumes the incident."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playbook_fakes import (
    GOOD,
    Crash,
    FakeDriver,
    RecordingSleep,
    plan,
    runner,
    statuses,
    step,
)

from tests.support.sink import HttpSink
from watchdogd.config.schema import Notifier
from watchdogd.playbook import IncidentPlan
from watchdogd.store import IncidentState, StepStatus, Store

NOTIFY = {"notify": "team"}
EXEC = {"exec": {"command": ["/app/migrate", "down"]}}
ROLLBACK = {"rollback": {}}
WAIT = {"wait_healthy": {"timeout": "5s"}}
GUARD = 10.0  # seconds a test waits for the runner to reach its crash point before failing


async def crash_during(
    db_path: Path,
    driver: FakeDriver,
    incident: IncidentPlan,
    reached: Callable[[], Awaitable[Any]],
    **kwargs: Any,
) -> None:
    """Run ``incident`` until ``reached`` returns, then cancel the runner: a crash."""
    with Store(db_path) as store:
        task = asyncio.create_task(runner(store, driver, RecordingSleep(), **kwargs).run(incident))
        await asyncio.wait_for(reached(), GUARD)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def crash_at_step(
    db_path: Path, driver: FakeDriver, incident: IncidentPlan, index: int, **kwargs: Any
) -> None:
    crash = Crash(index)
    await crash_during(db_path, driver, incident, crash.reached.wait, before_step=crash, **kwargs)


async def restart(
    db_path: Path, driver: FakeDriver, incident: IncidentPlan, **kwargs: Any
) -> tuple[Store, Any]:
    """A new store connection and runner, as after a restart; resumes ``incident``."""
    store = Store(db_path)
    outcome = await runner(store, driver, RecordingSleep(), **kwargs).resume(incident)
    return store, outcome


class TestResume:
    async def test_crash_leaves_the_step_started(self, db_path: Path, driver: FakeDriver) -> None:
        """After the crash the incident is open and the step in flight is still started."""
        incident = plan([step(**EXEC), step(**ROLLBACK)])
        await crash_at_step(db_path, driver, incident, 1)
        with Store(db_path) as store:
            assert [i.id for i in store.open_incidents()] == [incident.incident_id]
            assert statuses(store, incident.incident_id) == [
                ("exec", StepStatus.SUCCEEDED, 1),
                ("rollback", StepStatus.STARTED, 1),
            ]

    async def test_completed_non_idempotent_step_is_not_repeated(
        self, db_path: Path, driver: FakeDriver
    ) -> None:
        """An exec that finished before the crash does not run again on resume."""
        incident = plan([step(**EXEC), step(**ROLLBACK), step(**WAIT)])
        await crash_at_step(db_path, driver, incident, 1)
        store, outcome = await restart(db_path, driver, incident)
        with store:
            assert outcome.state is IncidentState.SUCCEEDED
            assert outcome.resumed
            assert len(driver.execs) == 1
            assert driver.restores == [(GOOD, 7.0)]
            assert statuses(store, incident.incident_id) == [
                ("exec", StepStatus.SUCCEEDED, 1),
                ("rollback", StepStatus.SUCCEEDED, 2),
                ("wait_healthy", StepStatus.SUCCEEDED, 1),
            ]

    async def test_in_flight_non_idempotent_step_is_interrupted(
        self, db_path: Path, driver: FakeDriver, http_sink: HttpSink
    ) -> None:
        """An exec in flight at the crash is reported, not re-run, and the rollback happens."""
        team = Notifier(name="team", url=f"json://127.0.0.1:{http_sink.port}/hook")
        incident = plan([step(**NOTIFY), step(**EXEC), step(**ROLLBACK)])
        driver.hang_exec = True
        await crash_during(db_path, driver, incident, driver.exec_called.wait, notifiers=[team])
        driver.hang_exec = False
        store, outcome = await restart(db_path, driver, incident, notifiers=[team])
        with store:
            assert len(driver.execs) == 1
            assert driver.running == GOOD
            assert outcome.state is IncidentState.SUCCEEDED
            assert [r.action for r in outcome.interrupted] == ["exec"]
            (entry,) = [e for e in store.journal_for(incident.incident_id) if e.action == "exec"]
            assert entry.status is StepStatus.INTERRUPTED
            assert "not run again" in entry.detail
            kinds = [e.kind for e in store.events(incident_id=incident.incident_id, after_id=0)]
            assert "step_interrupted" in kinds
        message = http_sink.wait_for(lambda r: r.json()["event"] == "step_interrupted").json()
        assert message["steps"][-1]["status"] == "interrupted"
        assert message["steps"][-1]["action"] == "exec"

    async def test_in_flight_rollback_converges_and_is_not_doubled(
        self, db_path: Path, driver: FakeDriver
    ) -> None:
        """A rollback cut off after it acted runs again to the same release, then never more."""
        incident = plan([step(**ROLLBACK), step(**WAIT)])
        driver.hang_restore_after_acting = True
        await crash_during(db_path, driver, incident, driver.restore_hung.wait)
        driver.hang_restore_after_acting = False
        store, outcome = await restart(db_path, driver, incident)
        with store:
            assert outcome.state is IncidentState.SUCCEEDED
            assert driver.restores == [(GOOD, 7.0), (GOOD, 7.0)]
            assert statuses(store, incident.incident_id)[0] == ("rollback", StepStatus.SUCCEEDED, 2)
            again = await runner(store, driver, RecordingSleep()).run(incident)
        assert again.already_finished
        assert len(driver.restores) == 2

    async def test_rollback_done_before_the_crash_is_not_repeated(
        self, db_path: Path, driver: FakeDriver
    ) -> None:
        """A crash during wait_healthy resumes the wait without restoring again."""
        incident = plan([step(**ROLLBACK), step(**WAIT)])
        await crash_at_step(db_path, driver, incident, 1)
        store, outcome = await restart(db_path, driver, incident)
        with store:
            assert outcome.state is IncidentState.SUCCEEDED
            assert len(driver.restores) == 1

    async def test_failed_abort_step_stays_failed(self, db_path: Path, driver: FakeDriver) -> None:
        """A crash after a step failed (abort) but before the incident ended: it ends failed,
        and nothing after the failed step runs."""
        incident = plan([step(**EXEC), step(**ROLLBACK)])
        with Store(db_path) as store:
            store.create_incident(
                incident_id=incident.incident_id,
                target="api",
                trigger=incident.trigger,
                bad_release=incident.bad_release,
                restore_release=incident.restore_release,
                actions=incident.actions,
            )
            store.step_started(incident.incident_id, 0, "exec")
            store.step_finished(incident.incident_id, 0, StepStatus.FAILED, "exited with 1")
        store, outcome = await restart(db_path, driver, incident)
        with store:
            assert outcome.state is IncidentState.FAILED
            assert driver.execs == []
            assert driver.restores == []

    async def test_changed_playbook_is_not_resumed(self, db_path: Path, driver: FakeDriver) -> None:
        """If the steps changed since the crash the incident ends aborted, nothing runs."""
        incident = plan([step(**EXEC), step(**ROLLBACK)])
        await crash_at_step(db_path, driver, incident, 0)
        with Store(db_path) as store:
            (record,) = store.open_incidents()
        changed = IncidentPlan.from_record(record, [step(**ROLLBACK), step(**EXEC)])
        store, outcome = await restart(db_path, driver, changed)
        with store:
            assert outcome.state is IncidentState.ABORTED
            assert "playbook changed" in outcome.detail
            assert driver.restores == []
            assert store.open_incidents() == []

    async def test_resume_needs_a_stored_incident(self, store: Store, driver: FakeDriver) -> None:
        """``resume`` refuses an incident the store does not know."""
        with pytest.raises(ValueError, match="no incident"):
            await runner(store, driver, RecordingSleep()).resume(plan([step(**ROLLBACK)]))


class TestCrashAtEveryStep:
    STEPS = (NOTIFY, EXEC, ROLLBACK, WAIT, NOTIFY)

    @pytest.mark.parametrize("crash_index", range(len(STEPS)))
    async def test_resume_rules_hold(
        self, db_path: Path, driver: FakeDriver, http_sink: HttpSink, crash_index: int
    ) -> None:
        """Whatever step the crash hits: one rollback to the known-good release, the exec at
        most once (reported if cut off), and every step ends with a final status."""
        team = Notifier(name="team", url=f"json://127.0.0.1:{http_sink.port}/hook")
        steps = [step(**data) for data in self.STEPS]
        await crash_at_step(db_path, driver, plan(steps), crash_index, notifiers=[team])
        with Store(db_path) as store:
            (record,) = store.open_incidents()
        incident = IncidentPlan.from_record(record, steps, stop_timeout=7.0)
        store, outcome = await restart(db_path, driver, incident, notifiers=[team])
        with store:
            assert outcome.state is IncidentState.SUCCEEDED
            assert driver.running == GOOD
            assert {release for release, _ in driver.restores} == {GOOD}
            assert len(driver.execs) <= 1
            journal = store.journal_for(incident.incident_id)
            assert all(entry.status.final for entry in journal)
            exec_status = journal[1].status
            if crash_index == 1:
                assert exec_status is StepStatus.INTERRUPTED
            else:
                assert exec_status is StepStatus.SUCCEEDED
        finished = http_sink.wait_for(lambda r: r.json()["event"] == "rollback_finished").json()
        assert finished["restore_release"]["image"] == GOOD.image
