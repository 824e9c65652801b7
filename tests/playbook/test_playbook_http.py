"""The ``http`` step against a local HTTP sink."""

from __future__ import annotations

from playbook_fakes import FakeDriver, RecordingSleep, plan, runner, step

from tests.support.sink import HttpSink
from watchdogd.store import StepStatus, Store


class TestHttpStep:
    async def test_sends_method_headers_and_json(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep, http_sink: HttpSink
    ) -> None:
        """The request goes out as configured and an expected status succeeds."""
        http = {
            "url": f"{http_sink.url}/purge?token=abc",
            "method": "PUT",
            "headers": {"X-Reason": "rollback"},
            "json": {"paths": ["/*"]},
        }
        http_sink.respond("/purge", "", status=202)
        outcome = await runner(store, driver, sleep).run(plan([step(http=http)]))
        result = outcome.steps[0]
        assert result.status is StepStatus.SUCCEEDED
        assert result.detail == f"PUT {http_sink.url}/purge?*** answered 202"
        request = http_sink.requests[0]
        assert (request.method, request.path, request.query) == ("PUT", "/purge", "token=abc")
        assert request.headers["X-Reason"] == "rollback"
        assert request.json() == {"paths": ["/*"]}

    async def test_unexpected_status_fails_without_the_query(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep, http_sink: HttpSink
    ) -> None:
        """Another status fails the step; the message leaves out the query (tokens)."""
        http_sink.respond("/purge", "denied", status=403)
        http = {"url": f"{http_sink.url}/purge?token=abc", "expect_status": [200]}
        outcome = await runner(store, driver, sleep).run(plan([step(http=http)]))
        result = outcome.steps[0]
        assert result.status is StepStatus.FAILED
        assert result.detail == f"POST {http_sink.url}/purge?*** answered 403, expected 200: denied"
        assert "token" not in result.detail
