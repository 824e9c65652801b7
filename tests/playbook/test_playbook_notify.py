"""Notifications: the JSON webhook body, Apprise URLs, failures, dry run, and the runner's own
messages. A local HTTP sink stands in for the receivers."""

from __future__ import annotations

from urllib.parse import parse_qs

from playbook_fakes import BAD, GOOD, FakeDriver, RecordingSleep, plan, runner, step

from tests.support.sink import HttpSink
from watchdogd.config.schema import Notifier
from watchdogd.playbook.notify import send_message
from watchdogd.store import IncidentState, StepStatus, Store


def team(sink: HttpSink, scheme: str = "json", path: str = "/hook") -> Notifier:
    return Notifier(name="team", url=f"{scheme}://127.0.0.1:{sink.port}{path}")


class TestJsonWebhook:
    async def test_body_carries_the_incident(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep, http_sink: HttpSink
    ) -> None:
        """Before and after the rollback: event, target, trigger numbers, both releases,
        the steps so far, the duration and the dry-run flag."""
        steps = [
            step(notify={"to": "team", "message": "api is being rolled back"}),
            step(rollback={}),
            step(notify="team"),
        ]
        incident = plan(steps)
        outcome = await runner(store, driver, sleep, notifiers=[team(http_sink)]).run(incident)
        assert outcome.state is IncidentState.SUCCEEDED
        first, second = (request.json() for request in http_sink.requests)
        assert http_sink.requests[0].path == "/hook"
        assert http_sink.requests[0].headers["Content-Type"].startswith("application/json")

        assert first["event"] == "rollback_started"
        assert first["target"] == "api"
        assert first["incident"] == incident.incident_id
        assert first["trigger"] == {
            "kind": "gate",
            "name": "probe:error_rate",
            "reason": "error rate 12.0% > 1.0% over 240 requests",
            "numbers": {"errors": 29, "requests": 240, "ratio": 0.12},
        }
        assert first["bad_release"] == {
            "id": BAD.id,
            "image": "sha256:bad",
            "image_ref": "api:v2",
            "config_hash": "c2",
        }
        assert first["restore_release"]["image"] == GOOD.image
        assert first["steps"] == []
        assert first["message"] == "api is being rolled back"
        assert first["dry_run"] is False
        assert isinstance(first["duration_seconds"], float)
        assert "api is being rolled back" in first["text"]

        assert second["event"] == "rollback_finished"
        assert [(s["action"], s["status"]) for s in second["steps"]] == [
            ("notify", "succeeded"),
            ("rollback", "succeeded"),
        ]
        assert second["title"] == "watchdogd: rolled back api"

    async def test_never_sends_a_release_spec(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep, http_sink: HttpSink
    ) -> None:
        """A release's spec (container env and all) stays out of notifications."""
        await runner(store, driver, sleep, notifiers=[team(http_sink)]).run(
            plan([step(notify="team")])
        )
        body = http_sink.requests[0].json()
        assert "spec" not in body["restore_release"]
        assert '"Id"' not in http_sink.requests[0].body.decode()

    async def test_receiver_error_fails_the_step_after_retries(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep, http_sink: HttpSink
    ) -> None:
        """A 500 fails the notify step (retried, it is idempotent); continue lets it pass."""
        http_sink.respond("/hook", "boom", status=500)
        steps = [step(notify="team", on_failure="continue"), step(rollback={})]
        outcome = await runner(store, driver, sleep, notifiers=[team(http_sink)]).run(plan(steps))
        assert outcome.state is IncidentState.SUCCEEDED
        notify = outcome.steps[0]
        assert (notify.status, notify.attempts) == (StepStatus.FAILED, 3)
        assert notify.detail == "team: HTTP 500: boom"
        assert len(http_sink.requests) == 3

    async def test_unknown_notifier(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """A notify step naming no configured notifier fails clearly."""
        outcome = await runner(store, driver, sleep).run(plan([step(notify="pager")]))
        assert outcome.steps[0].detail == "no notifier named 'pager'"

    async def test_dry_run_still_notifies(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep, http_sink: HttpSink
    ) -> None:
        """In a dry run notifications go out, marked, and the rollback is only planned."""
        steps = [step(rollback={}), step(notify="team")]
        incident = plan(steps, dry_run=True)
        await runner(store, driver, sleep, notifiers=[team(http_sink)]).run(incident)
        body = http_sink.requests[0].json()
        assert body["dry_run"] is True
        assert body["title"].startswith("[dry run]")
        assert body["steps"] == [
            {
                "index": 0,
                "action": "rollback",
                "status": "skipped",
                "attempts": 0,
                "detail": "dry run",
            }
        ]
        assert driver.restores == []

    async def test_failed_playbook_is_announced(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep, http_sink: HttpSink
    ) -> None:
        """When a step aborts the playbook, the playbook's notifiers get rollback_failed."""
        driver.health = False
        steps = [step(notify="team"), step(rollback={}), step(wait_healthy={"timeout": "10ms"})]
        outcome = await runner(store, driver, sleep, notifiers=[team(http_sink)]).run(plan(steps))
        assert outcome.state is IncidentState.FAILED
        failed = http_sink.wait_for(lambda r: r.json()["event"] == "rollback_failed").json()
        assert failed["steps"][-1]["action"] == "wait_healthy"
        assert failed["steps"][-1]["status"] == "failed"
        assert failed["title"] == "watchdogd: ROLLBACK FAILED for api"


class TestSendMessage:
    async def test_message_outside_a_playbook(self, http_sink: HttpSink) -> None:
        """``send_message`` carries an event and text, e.g. for a frozen target."""
        detail = await send_message(
            team(http_sink), "target_frozen", "api", "the restored release breaches as well"
        )
        assert detail == "sent target_frozen to team"
        body = http_sink.requests[0].json()
        assert body["event"] == "target_frozen"
        assert body["title"] == "watchdogd: target frozen api"
        assert body["text"] == "the restored release breaches as well"


class TestApprise:
    async def test_apprise_url_gets_title_and_text(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep, http_sink: HttpSink
    ) -> None:
        """A non-json URL goes through Apprise (here its ``form://`` plugin) as text."""
        notifier = team(http_sink, scheme="form", path="/apprise")
        steps = [step(rollback={}), step(notify="team")]
        outcome = await runner(store, driver, sleep, notifiers=[notifier]).run(plan(steps))
        assert outcome.steps[1].status is StepStatus.SUCCEEDED
        request = http_sink.wait_for("/apprise")
        form = {key: values[0] for key, values in parse_qs(request.body.decode()).items()}
        assert form["title"] == "watchdogd: rolled back api"
        assert "Trigger: gate probe:error_rate" in form["message"]
        assert "Restoring: api:v1" in form["message"]

    async def test_invalid_apprise_url(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """A URL Apprise does not understand fails the step without echoing the URL."""
        notifier = Notifier(name="team", url="nosuchscheme://secret-token@host")
        outcome = await runner(store, driver, sleep, notifiers=[notifier]).run(
            plan([step(notify="team")])
        )
        assert outcome.steps[0].detail == "team: not a valid Apprise URL"
        assert "secret-token" not in outcome.steps[0].detail
