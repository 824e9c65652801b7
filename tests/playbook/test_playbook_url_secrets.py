"""A configured URL's query string and userinfo never reach a step's detail, the journal, the
audit events or a notification (issue #11, item 5). The receivers are real local HTTP servers
that misbehave the way a leak needs: an endless redirect (aiohttp quotes the whole URL in its
error) and a refusal that echoes the request."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest
from playbook_fakes import FakeDriver, RecordingSleep, plan, runner, step

from watchdogd.config.schema import Notifier
from watchdogd.redact import redact, safe_url
from watchdogd.store import StepStatus, Store

KEY = "s3cr3t-api-key"
PASSWORD = "hunter2-password"


class Misbehaving(BaseHTTPRequestHandler):
    """``/loop`` redirects to itself forever; anything else is refused, quoting the request."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.startswith("/loop"):
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f"forbidden: {self.command} {self.path}\n".encode()
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _handle  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    httpd.daemon_threads = True
    Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"user:{PASSWORD}@127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def everything_said(store: Store, detail: str) -> str:
    events = store.events(limit=1000)
    return "\n".join([detail, *(f"{e.message} {e.data}" for e in events)])


class TestHttpStep:
    @pytest.mark.parametrize("path", ["/loop", "/denied"])
    async def test_failure_never_shows_the_query_or_the_password(
        self,
        store: Store,
        driver: FakeDriver,
        sleep: RecordingSleep,
        server: str,
        path: str,
    ) -> None:
        """Too many redirects, or a refusal quoting the request: the key stays hidden."""
        http = {"url": f"http://{server}{path}?apikey={KEY}", "expect_status": [200]}
        outcome = await runner(store, driver, sleep).run(plan([step(http=http)]))
        result = outcome.steps[0]
        assert result.status is StepStatus.FAILED
        said = everything_said(store, result.detail)
        assert path in result.detail
        assert KEY not in said
        assert PASSWORD not in said


class TestNotifier:
    @pytest.mark.parametrize("path", ["/loop", "/denied"])
    async def test_failure_never_shows_the_query_or_the_password(
        self,
        store: Store,
        driver: FakeDriver,
        sleep: RecordingSleep,
        server: str,
        path: str,
    ) -> None:
        """A notifier that fails: neither its step nor the runner's own notice shows the key."""
        notifier = Notifier(name="team", url=f"json://{server}{path}?token={KEY}")
        steps = [step(notify="team", on_failure="continue"), step(exec={"command": ["false"]})]
        driver.exec_exit_code = 1
        outcome = await runner(store, driver, sleep, notifiers=[notifier]).run(plan(steps))
        assert outcome.steps[0].status is StepStatus.FAILED
        said = everything_said(store, outcome.steps[0].detail)
        assert "team" in outcome.steps[0].detail
        assert "notify_failed" in [e.kind for e in store.events(limit=1000)]
        assert KEY not in said
        assert PASSWORD not in said


class TestRedact:
    def test_urls_in_any_text_lose_userinfo_and_query(self) -> None:
        """Every URL a message quotes is cut to scheme, host, port and path."""
        text = f"failed: url='https://bob:{PASSWORD}@example.com:8443/a/b?token={KEY}#frag'"
        assert redact(text) == "failed: url='https://example.com:8443/a/b?***'"

    def test_a_url_without_secrets_is_unchanged(self) -> None:
        """Nothing to hide, nothing changed: the message stays useful."""
        assert safe_url("http://127.0.0.1:9797/healthz") == "http://127.0.0.1:9797/healthz"

    def test_extra_values_are_hidden_too(self) -> None:
        """Values a caller knows of (an extracted token) go as well, longest first."""
        assert redact("token abcdef and abc", ["abc", "abcdef"]) == "token *** and ***"
