"""HTTP probe, auth flow and scrape against real local servers (aiohttp.web on 127.0.0.1:0)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
from aiohttp import web

from tests.support.ports import free_port
from watchdogd.config.schema import AuthFlowCheck, AuthStep, HttpCheck, ScrapeCheck
from watchdogd.config.validation import parse
from watchdogd.sources.auth_flow import AuthFlowProbe
from watchdogd.sources.http import HttpProbe
from watchdogd.sources.probe_client import ProbeClient, open_probe_client
from watchdogd.sources.scrape import ScrapeSource

PASSWORD = "correct-horse-battery"  # plays the config's secret in these tests


@dataclass
class Sample:
    kind: str
    now: float
    ok: bool | None = None
    latency: float | None = None
    detail: str = ""
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    count: int = 0


@dataclass
class RecordingSink:
    """A SampleSink that keeps every call."""

    samples: list[Sample] = field(default_factory=list)
    _added: asyncio.Event = field(default_factory=asyncio.Event)

    def _add(self, sample: Sample) -> None:
        self.samples.append(sample)
        self._added.set()

    started: list[float] = field(default_factory=list)

    def probe_started(self, now: float) -> int:
        self.started.append(now)
        return len(self.started)

    def probe(
        self,
        now: float,
        ok: bool,
        latency: float | None,
        detail: str = "",
        token: int | None = None,
    ) -> None:
        self._add(Sample("probe", now, ok=ok, latency=latency, detail=detail))

    def counts(self, now: float, requests: int, errors: int) -> None:
        self._add(Sample("counts", now, requests=requests, errors=errors))

    def latency(self, now: float, seconds: float, count: int = 1, *, above: bool = False) -> None:
        self._add(Sample("latency", now, seconds=seconds, count=count))

    def value(self, now: float, value: float) -> None:
        self._add(Sample("value", now, seconds=value))

    def unknown(self, now: float, reason: str, token: int | None = None) -> None:
        self._add(Sample("unknown", now, detail=reason))

    async def wait_for(self, predicate: Callable[[Sample], bool], after: int = 0) -> int:
        """The index of the first sample at or after ``after`` that satisfies ``predicate``,
        waiting for it (up to a generous bound: this is not a timing assertion)."""
        async with asyncio.timeout(90):
            while True:
                for index in range(after, len(self.samples)):
                    if predicate(self.samples[index]):
                        return index
                self._added.clear()
                await self._added.wait()

    async def wait_count(self, count: int) -> None:
        """Wait (up to a generous bound, not a timing assertion) for ``count`` samples."""
        async with asyncio.timeout(30):
            while len(self.samples) < count:
                self._added.clear()
                await self._added.wait()

    @property
    def last(self) -> Sample:
        return self.samples[-1]

    def of(self, kind: str) -> list[Sample]:
        return [s for s in self.samples if s.kind == kind]


class App:
    """A switchable test app: mode ok, 500, slow, broken-auth or forget-tokens; /metrics text
    and status are set by the test."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.tokens: set[str] = set()
        self.connections: set[Any] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.metrics = ""
        self.metrics_status = 200

    def routes(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_post("/login", self.login)
        app.router.add_get("/me", self.me)
        app.router.add_get("/items/{item}", self.item)
        app.router.add_get("/metrics", self.metrics_page)
        return app

    async def _common(self, request: web.Request) -> None:
        self.connections.add(request.transport)
        if self.mode == "slow":
            await asyncio.sleep(2)

    async def health(self, request: web.Request) -> web.Response:
        await self._common(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(float(request.query.get("hold", "0")))
        finally:
            self.in_flight -= 1
        if self.mode == "500":
            return web.json_response({"status": "broken"}, status=500)
        return web.json_response({"status": "ok", "version": "v1"})

    async def login(self, request: web.Request) -> web.Response:
        await self._common(request)
        body = await request.json()
        if self.mode == "broken-auth" or body.get("password") != PASSWORD:
            # Echoes the password, as a careless app might: it must not reach the detail.
            return web.json_response({"error": f"bad password {body.get('password')}"}, status=401)
        token = "tok-" + secrets.token_hex(8)
        if self.mode != "forget-tokens":
            self.tokens.add(token)
        response = web.json_response(
            {"access_token": token, "data": {"items": [{"id": "item-7"}]}, "expires_in": 60}
        )
        response.set_cookie("session", "cookie-" + token)
        return response

    async def me(self, request: web.Request) -> web.Response:
        await self._common(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens or request.cookies.get("session") != "cookie-" + token:
            return web.json_response({"error": f"bad token {token}"}, status=401)
        return web.json_response({"user": "tester"})

    async def item(self, request: web.Request) -> web.Response:
        await self._common(request)
        if request.query.get("token") not in self.tokens:
            return web.json_response({"error": "no"}, status=403)
        return web.json_response({"id": request.match_info["item"]})

    async def metrics_page(self, request: web.Request) -> web.Response:
        await self._common(request)
        return web.Response(text=self.metrics, status=self.metrics_status)


@pytest.fixture
async def app() -> AsyncIterator[tuple[App, str]]:
    state = App()
    runner = web.AppRunner(state.routes())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield state, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[ProbeClient]:
    async with open_probe_client() as shared:
        yield shared


def http_check(url: str, **fields: Any) -> HttpCheck:
    return parse(HttpCheck, {"name": "web", "type": "http", "url": url, **fields})


class TestHttpProbe:
    async def test_good_release_is_ok(self, app: tuple[App, str], client: ProbeClient) -> None:
        """A 200 with a matching body is ok and has a latency."""
        _, url = app
        sink = RecordingSink()
        probe = HttpProbe(http_check(f"{url}/health", body_match='"status": "ok"'), sink, client)
        await probe.probe_once()
        assert sink.last.ok is True
        assert sink.last.latency is not None
        assert sink.last.latency > 0

    async def test_500_is_a_failure(self, app: tuple[App, str], client: ProbeClient) -> None:
        """A status outside expect_status fails and says which status came."""
        state, url = app
        state.mode = "500"
        sink = RecordingSink()
        await HttpProbe(http_check(f"{url}/health"), sink, client).probe_once()
        assert sink.last.ok is False
        assert sink.last.detail == "status 500, expected 200"
        assert sink.last.latency is not None

    async def test_expect_status_list(self, app: tuple[App, str], client: ProbeClient) -> None:
        """expect_status may accept other codes."""
        state, url = app
        state.mode = "500"
        sink = RecordingSink()
        check = http_check(f"{url}/health", expect_status=[200, 500])
        await HttpProbe(check, sink, client).probe_once()
        assert sink.last.ok is True

    async def test_body_mismatch(self, app: tuple[App, str], client: ProbeClient) -> None:
        """A 200 whose body does not match body_match fails."""
        _, url = app
        sink = RecordingSink()
        check = http_check(f"{url}/health", body_match=r'"version":\s*"v2"')
        await HttpProbe(check, sink, client).probe_once()
        assert sink.last.ok is False
        assert "body" in sink.last.detail

    async def test_timeout_is_a_failure(self, app: tuple[App, str], client: ProbeClient) -> None:
        """A slow answer past the timeout fails, with the time waited as latency."""
        state, url = app
        state.mode = "slow"
        sink = RecordingSink()
        await HttpProbe(http_check(f"{url}/health", timeout="200ms"), sink, client).probe_once()
        assert sink.last.ok is False
        assert sink.last.detail == "timeout after 0.2s"
        assert sink.last.latency is not None

    async def test_connection_refused_is_hard_down(self, client: ProbeClient) -> None:
        """Nothing listening on the target's own URL is a failure, not unknown."""
        sink = RecordingSink()
        url = f"http://127.0.0.1:{free_port()}/health?key={PASSWORD}"
        probe = HttpProbe(http_check(url), sink, client, secrets=frozenset({PASSWORD}))
        await probe.probe_once()
        assert sink.of("unknown") == []
        assert sink.last.ok is False
        assert sink.last.latency is None
        assert sink.last.detail == "connection failed (connection refused)"

    async def test_dns_failure_is_unknown(self, client: ProbeClient) -> None:
        """A name that does not resolve is the name service's fault, not the target's."""
        sink = RecordingSink()
        check = http_check("http://no-such-host.invalid/health", timeout="5s")
        await HttpProbe(check, sink, client).probe_once()
        assert sink.of("probe") == []
        [unknown] = sink.of("unknown")
        assert "DNS lookup failed" in unknown.detail

    async def test_keep_alive_reuses_one_connection(
        self, app: tuple[App, str], client: ProbeClient
    ) -> None:
        """Successive probes of one URL reuse a single keep-alive connection."""
        state, url = app
        probe = HttpProbe(http_check(f"{url}/health"), RecordingSink(), client)
        for _ in range(5):
            await probe.probe_once()
        assert len(state.connections) == 1

    async def test_in_flight_limit(self, app: tuple[App, str]) -> None:
        """No more requests are in flight than the client's limit allows."""
        state, url = app
        sink = RecordingSink()
        async with open_probe_client(max_in_flight=2) as limited:
            probe = HttpProbe(http_check(f"{url}/health?hold=0.05"), sink, limited)
            await asyncio.gather(*(probe.probe_once() for _ in range(10)))
        assert state.max_in_flight == 2
        assert all(s.ok for s in sink.samples)

    async def test_run_probes_repeatedly(self, app: tuple[App, str], client: ProbeClient) -> None:
        """run() keeps probing on its schedule until cancelled."""
        _, url = app
        sink = RecordingSink()
        task = asyncio.create_task(
            HttpProbe(http_check(f"{url}/health", interval="50ms"), sink, client).run()
        )
        await sink.wait_count(3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert all(s.ok for s in sink.samples)


@pytest.fixture
async def tls_app() -> AsyncIterator[str]:
    """The test app over HTTPS, with a certificate from a CA that no system trusts."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server_context)
    runner = web.AppRunner(App().routes())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class TestTls:
    """The shared client verifies certificates (aiohttp's verifying context), unless a check
    says ``tls_verify: false``."""

    async def test_untrusted_certificate_fails(self, tls_app: str, client: ProbeClient) -> None:
        sink = RecordingSink()
        await HttpProbe(http_check(f"{tls_app}/health"), sink, client).probe_once()
        assert sink.last.ok is False
        assert sink.last.detail == "TLS certificate rejected"

    async def test_tls_verify_false_accepts_it(self, tls_app: str, client: ProbeClient) -> None:
        sink = RecordingSink()
        check = http_check(f"{tls_app}/health", tls_verify=False)
        await HttpProbe(check, sink, client).probe_once()
        assert sink.last.ok is True


def flow(url: str, **fields: Any) -> AuthFlowCheck:
    steps = [
        {
            "name": "login",
            "method": "POST",
            "url": f"{url}/login",
            "json": {"user": "tester", "password": PASSWORD},
            "extract": {"token": "access_token", "item": "data.items.0.id"},
        },
        {"name": "me", "url": f"{url}/me", "headers": {"Authorization": "Bearer {token}"}},
        {"name": "item", "url": f"{url}/items/{{item}}?token={{token}}"},
    ]
    return parse(
        AuthFlowCheck, {"name": "login-flow", "type": "auth_flow", "steps": steps, **fields}
    )


class TestAuthFlow:
    async def test_flow_succeeds(self, app: tuple[App, str], client: ProbeClient) -> None:
        """Extracted values feed later steps' headers and URL; cookies carry over; one probe."""
        _, url = app
        sink = RecordingSink()
        await AuthFlowProbe(flow(url), sink, client).probe_once()
        assert len(sink.samples) == 1
        assert sink.last.ok is True, sink.last.detail
        assert sink.last.latency is not None

    async def test_broken_login_names_the_step(
        self, app: tuple[App, str], client: ProbeClient
    ) -> None:
        """A failing login names the step and the statuses, and never the password."""
        state, url = app
        state.mode = "broken-auth"
        sink = RecordingSink()
        secret = frozenset({PASSWORD})
        await AuthFlowProbe(flow(url), sink, client, secrets=secret).probe_once()
        assert sink.last.ok is False
        assert sink.last.detail == "step 'login': status 401, expected 200"

    async def test_failure_later_never_shows_the_token(
        self, app: tuple[App, str], client: ProbeClient
    ) -> None:
        """A later step failing names that step; the extracted token stays out of the detail."""
        state, url = app
        state.mode = "forget-tokens"
        sink = RecordingSink()
        probe = AuthFlowProbe(flow(url), sink, client)
        await probe.probe_once()
        assert sink.last.ok is False
        assert sink.last.detail.startswith("step 'me': status 401")
        assert "tok-" not in sink.last.detail

    async def test_connection_failure_hides_url_tokens(
        self, app: tuple[App, str], client: ProbeClient
    ) -> None:
        """A step whose URL holds a token fails on a dead port without echoing the token."""
        _, url = app
        dead = f"http://127.0.0.1:{free_port()}"
        check = flow(url)
        dead_step = parse(AuthStep, {"name": "dead", "url": f"{dead}/x?token={{token}}"})
        check = dataclasses.replace(check, steps=[check.steps[0], dead_step])
        sink = RecordingSink()
        await AuthFlowProbe(check, sink, client).probe_once()
        assert sink.last.ok is False
        assert sink.last.detail == "step 'dead': connection failed (connection refused)"

    async def test_missing_extract_path(self, app: tuple[App, str], client: ProbeClient) -> None:
        """An extract path that leads nowhere fails the step and names name and path."""
        _, url = app
        check = flow(url)
        login = dataclasses.replace(check.steps[0], extract={"token": "data.nothing.here"})
        check = dataclasses.replace(check, steps=[login])
        sink = RecordingSink()
        await AuthFlowProbe(check, sink, client).probe_once()
        assert sink.last.ok is False
        assert "extract 'token'" in sink.last.detail
        assert "data.nothing.here" in sink.last.detail

    async def test_slow_flow_times_out(self, app: tuple[App, str], client: ProbeClient) -> None:
        """A flow slower than its timeout fails at the step it was in."""
        state, url = app
        state.mode = "slow"
        sink = RecordingSink()
        await AuthFlowProbe(flow(url, timeout="300ms"), sink, client).probe_once()
        assert sink.last.ok is False
        assert sink.last.detail.startswith("step 'login': timeout")


METRICS = """\
# TYPE http_requests_total counter
http_requests_total{{handler="api",status="200"}} {ok}
http_requests_total{{handler="api",status="500"}} {bad}
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{{handler="api",le="0.1"}} {fast}
http_request_duration_seconds_bucket{{handler="api",le="1"}} {medium}
http_request_duration_seconds_bucket{{handler="api",le="+Inf"}} {total}
http_request_duration_seconds_sum{{handler="api"}} 1
http_request_duration_seconds_count{{handler="api"}} {total}
"""


def scrape_check(url: str) -> ScrapeCheck:
    return parse(
        ScrapeCheck,
        {
            "name": "traffic",
            "type": "scrape",
            "url": f"{url}/metrics",
            "requests": "http_requests_total",
            "errors": 'http_requests_total{status=~"5.."}',
            "latency_histogram": "http_request_duration_seconds",
        },
    )


def metrics(ok: int, bad: int, fast: int, medium: int, total: int) -> str:
    return METRICS.format(ok=ok, bad=bad, fast=fast, medium=medium, total=total)


class TestScrape:
    async def test_deltas_per_interval(self, app: tuple[App, str], client: ProbeClient) -> None:
        """The first scrape is the baseline; the next reports counter and bucket deltas."""
        state, url = app
        sink = RecordingSink()
        source = ScrapeSource(scrape_check(url), sink, client)
        state.metrics = metrics(ok=10, bad=1, fast=8, medium=10, total=11)
        await source.probe_once()
        assert sink.samples == []
        state.metrics = metrics(ok=20, bad=4, fast=15, medium=20, total=24)
        await source.probe_once()
        counts = sink.of("counts")
        assert [(c.requests, c.errors) for c in counts] == [(13, 3)]
        # At each bucket's lower bound: an observation is known only to be above it.
        assert [(s.seconds, s.count) for s in sink.of("latency")] == [(0.0, 7), (0.1, 3), (1.0, 3)]

    async def test_counter_reset(self, app: tuple[App, str], client: ProbeClient) -> None:
        """After an app restart the counters' new values are the deltas."""
        state, url = app
        sink = RecordingSink()
        source = ScrapeSource(scrape_check(url), sink, client)
        state.metrics = metrics(ok=100, bad=10, fast=100, medium=110, total=110)
        await source.probe_once()
        state.metrics = metrics(ok=2, bad=1, fast=3, medium=3, total=3)
        await source.probe_once()
        assert [(c.requests, c.errors) for c in sink.of("counts")] == [(3, 1)]

    async def test_unreachable_metrics_is_unknown(
        self, app: tuple[App, str], client: ProbeClient
    ) -> None:
        """A metrics endpoint that fails, errors or returns garbage is unknown, never bad."""
        state, url = app
        sink = RecordingSink()
        source = ScrapeSource(scrape_check(url), sink, client)
        state.metrics_status = 500
        await source.probe_once()
        state.metrics_status, state.metrics = 200, "this is { not metrics"
        await source.probe_once()
        state.metrics = "# TYPE unrelated gauge\nunrelated 1\n"
        await source.probe_once()
        dead = ScrapeSource(scrape_check(f"http://127.0.0.1:{free_port()}"), sink, client)
        await dead.probe_once()
        assert [s.kind for s in sink.samples] == ["unknown"] * 4
        assert "status 500" in sink.samples[0].detail
        assert "does not parse" in sink.samples[1].detail
        assert "no series matches" in sink.samples[2].detail
        assert "connection failed" in sink.samples[3].detail
