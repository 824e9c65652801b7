"""The runner against a fake driver: order, journal, retries, on_failure, timeouts, dry run."""

from __future__ import annotations

from playbook_fakes import GOOD, FakeDriver, RecordingSleep, plan, runner, statuses, step

from watchdogd.store import IncidentState, StepStatus, Store

EXEC = {"exec": {"command": ["/app/migrate", "down"]}}
ROLLBACK = {"rollback": {}}
WAIT = {"wait_healthy": {"timeout": "5s"}}


class TestOrderAndJournal:
    async def test_runs_steps_in_order_and_journals_each(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """exec, rollback, wait_healthy run in order; each ends succeeded in the journal."""
        incident = plan([step(**EXEC), step(**ROLLBACK), step(**WAIT)])
        outcome = await runner(store, driver, sleep).run(incident)
        assert outcome.state is IncidentState.SUCCEEDED
        assert [r.action for r in outcome.steps] == ["exec", "rollback", "wait_healthy"]
        assert driver.execs[0]["command"] == ["/app/migrate", "down"]
        assert driver.restores == [(GOOD, 7.0)]
        assert driver.running == GOOD
        assert statuses(store, incident.incident_id) == [
            ("exec", StepStatus.SUCCEEDED, 1),
            ("rollback", StepStatus.SUCCEEDED, 1),
            ("wait_healthy", StepStatus.SUCCEEDED, 1),
        ]
        record = store.incident(incident.incident_id)
        assert record is not None
        assert record.state is IncidentState.SUCCEEDED
        assert record.actions == ("exec", "rollback", "wait_healthy")

    async def test_started_is_committed_before_the_step_acts(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """When a step acts, another connection already sees its row as started."""
        seen: list[list[tuple[str, StepStatus, int]]] = []

        async def before_step(index: int, _step: object) -> None:
            with Store(store.path, read_only=True) as reader:
                seen.append(statuses(reader, incident.incident_id))

        incident = plan([step(**EXEC), step(**ROLLBACK)])
        await runner(store, driver, sleep, before_step=before_step).run(incident)
        assert seen == [
            [("exec", StepStatus.STARTED, 1)],
            [("exec", StepStatus.SUCCEEDED, 1), ("rollback", StepStatus.STARTED, 1)],
        ]

    async def test_exec_and_command_see_the_incident(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """exec steps get the WATCHDOGD_* variables on top of their own env."""
        incident = plan([step(exec={"command": ["x"], "env": {"A": "1"}})])
        await runner(store, driver, sleep).run(incident)
        assert driver.execs[0]["env"] == {
            "A": "1",
            "WATCHDOGD_TARGET": "api",
            "WATCHDOGD_INCIDENT": incident.incident_id,
            "WATCHDOGD_BAD_IMAGE": "sha256:bad",
            "WATCHDOGD_RESTORE_IMAGE": "sha256:good",
        }

    async def test_audit_log_tells_the_story(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """The audit log has the start with the trigger's numbers, each step, and the end."""
        incident = plan([step(**ROLLBACK)])
        await runner(store, driver, sleep).run(incident)
        events = store.events(incident_id=incident.incident_id, after_id=0)
        assert [e.kind for e in events] == [
            "incident_started",
            "step_succeeded",
            "incident_finished",
        ]
        assert events[0].data["numbers"] == {"errors": 29, "requests": 240, "ratio": 0.12}
        assert "error rate 12.0%" in events[0].message
        assert events[2].data["state"] == "succeeded"

    async def test_a_finished_incident_never_runs_again(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """Running the same incident twice restores once and returns the recorded outcome."""
        incident = plan([step(**ROLLBACK)])
        await runner(store, driver, sleep).run(incident)
        again = await runner(store, driver, sleep).run(incident)
        assert again.already_finished
        assert again.state is IncidentState.SUCCEEDED
        assert len(driver.restores) == 1


class TestRetries:
    async def test_idempotent_steps_retry_with_backoff(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """A rollback that fails twice succeeds on its third attempt, backing off 1 s, 2 s."""
        driver.restore_failures = 2
        incident = plan([step(**ROLLBACK)])
        outcome = await runner(store, driver, sleep).run(incident)
        assert outcome.state is IncidentState.SUCCEEDED
        assert len(driver.restores) == 3
        assert sleep.waits == [1.0, 2.0]
        assert statuses(store, incident.incident_id) == [("rollback", StepStatus.SUCCEEDED, 3)]
        retries = [e for e in store.events(after_id=0) if e.kind == "step_retry"]
        assert [e.data["attempt"] for e in retries] == [1, 2]
        assert "engine refused the container" in retries[0].message

    async def test_retries_run_out(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """After its attempts a failing idempotent step fails with the last reason."""
        driver.restore_failures = 5
        outcome = await runner(store, driver, sleep).run(plan([step(**ROLLBACK)]))
        assert outcome.state is IncidentState.FAILED
        assert len(driver.restores) == 3
        assert outcome.steps[0].detail == "engine refused the container"

    async def test_non_idempotent_steps_do_not_retry(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """A failing exec is tried once, and its output tail is in the failure."""
        driver.exec_failures = 1
        outcome = await runner(store, driver, sleep).run(plan([step(**EXEC)]))
        assert len(driver.execs) == 1
        assert sleep.waits == []
        assert outcome.steps[0].status is StepStatus.FAILED
        assert "exited with 3" in outcome.steps[0].detail
        assert "migration 0042 failed" in outcome.steps[0].detail

    async def test_explicit_retries_on_a_non_idempotent_step(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """``retries: 1`` lets an exec try twice."""
        driver.exec_failures = 1
        outcome = await runner(store, driver, sleep).run(plan([step(**EXEC, retries=1)]))
        assert outcome.state is IncidentState.SUCCEEDED
        assert len(driver.execs) == 2
        assert sleep.waits == [1.0]


class TestOnFailure:
    async def test_abort_stops_the_playbook(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """A failing step with on_failure abort fails the incident; later steps never run."""
        driver.exec_failures = 1
        incident = plan([step(**EXEC), step(**ROLLBACK)])
        outcome = await runner(store, driver, sleep).run(incident)
        assert outcome.state is IncidentState.FAILED
        assert driver.restores == []
        assert statuses(store, incident.incident_id) == [("exec", StepStatus.FAILED, 1)]
        assert "step 1 (exec) failed" in outcome.detail

    async def test_continue_goes_on(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """With on_failure continue the rollback still happens and the incident succeeds."""
        driver.exec_failures = 1
        incident = plan([step(**EXEC, on_failure="continue"), step(**ROLLBACK)])
        outcome = await runner(store, driver, sleep).run(incident)
        assert outcome.state is IncidentState.SUCCEEDED
        assert [r.status for r in outcome.steps] == [StepStatus.FAILED, StepStatus.SUCCEEDED]
        assert driver.running == GOOD

    async def test_nothing_to_restore(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """A rollback without a restore release fails clearly, without touching the target."""
        outcome = await runner(store, driver, sleep).run(plan([step(**ROLLBACK)], restore=None))
        assert outcome.steps[0].detail == "no known-good release to restore"
        assert driver.restores == []


class TestTimeouts:
    async def test_a_hanging_step_times_out(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """A step that does not finish within its timeout fails with "timed out"."""
        driver.hang_exec = True
        outcome = await runner(store, driver, sleep).run(plan([step(**EXEC, timeout="50ms")]))
        assert outcome.steps[0].status is StepStatus.FAILED
        assert outcome.steps[0].detail == "timed out after 0.05 s"

    async def test_wait_healthy_polls_until_healthy(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """Unknown and unhealthy answers are waited out; healthy ends the step."""
        answers: list[bool | None] = [None, False, True]
        asked: list[tuple[float, int]] = []

        async def health(since: float, min_samples: int) -> bool | None:
            asked.append((since, min_samples))
            return answers.pop(0)

        outcome = await runner(store, driver, sleep, health_check=health).run(plan([step(**WAIT)]))
        assert outcome.state is IncidentState.SUCCEEDED
        assert answers == []
        # Every answer judges the same evidence: from the step's start on, one sample each.
        assert len({since for since, _ in asked}) == 1
        assert {n for _, n in asked} == {1}

    async def test_wait_healthy_deadline_fails_once(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """Never healthy within the deadline: failed, not retried, and the reason says why."""
        driver.health = False
        incident = plan([step(wait_healthy={"timeout": "50ms"})])
        outcome = await runner(store, driver, sleep).run(incident)
        assert outcome.state is IncidentState.FAILED
        assert outcome.steps[0].detail == "not healthy within 0.05 s (unhealthy)"
        assert statuses(store, incident.incident_id) == [("wait_healthy", StepStatus.FAILED, 1)]


class TestDryRun:
    async def test_changes_nothing_and_records_the_plan(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """Every step is journaled skipped with "dry run"; the driver is never touched."""
        incident = plan([step(**EXEC), step(**ROLLBACK), step(**WAIT)], dry_run=True)
        outcome = await runner(store, driver, sleep).run(incident)
        assert outcome.state is IncidentState.SUCCEEDED
        assert driver.execs == []
        assert driver.restores == []
        journal = store.journal_for(incident.incident_id)
        assert {(e.status, e.detail) for e in journal} == {(StepStatus.SKIPPED, "dry run")}
        assert store.recent_rollback_times("api", 0) == []
        record = store.incident(incident.incident_id)
        assert record is not None
        assert record.dry_run
