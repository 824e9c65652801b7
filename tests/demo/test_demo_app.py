"""The demo's sample app, served for real on 127.0.0.1: endpoints, faults and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from watchdogd.demo.app import PASSWORD, SampleApp


class Served:
    def __init__(self, app: SampleApp, url: str, session: aiohttp.ClientSession) -> None:
        self.app = app
        self.url = url
        self.session = session

    async def status(self, method: str, path: str, **kwargs: Any) -> int:
        async with self.session.request(method, self.url + path, **kwargs) as response:
            await response.read()
            return response.status

    async def login(self) -> str:
        body = {"username": "probe", "password": PASSWORD}
        async with self.session.post(self.url + "/auth/login", json=body) as response:
            assert response.status == 200
            return str((await response.json())["access_token"])

    async def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        async with self.session.get(self.url + "/metrics") as response:
            text = await response.text()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


Serve = Callable[[SampleApp], Awaitable[Served]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []
    session = aiohttp.ClientSession()

    async def start(app: SampleApp) -> Served:
        runner = web.AppRunner(app.build())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return Served(app, f"http://127.0.0.1:{port}", session)

    yield start
    await session.close()
    for runner in runners:
        await runner.cleanup()


class TestGoodRelease:
    async def test_endpoints_answer(self, serve: Serve) -> None:
        """health, api and the login flow answer 200; logout revokes the token."""
        served = await serve(SampleApp("v1", None))
        assert await served.status("GET", "/health") == 200
        assert await served.status("GET", "/api") == 200
        token = await served.login()
        bearer = {"Authorization": f"Bearer {token}"}
        assert await served.status("GET", "/auth/me", headers=bearer) == 200
        assert await served.status("POST", "/auth/logout", headers=bearer) == 200
        assert await served.status("GET", "/auth/me", headers=bearer) == 401

    async def test_wrong_password_and_missing_token(self, serve: Serve) -> None:
        """A wrong password and a request without a token are refused with 401."""
        served = await serve(SampleApp("v1", None))
        wrong = {"username": "probe", "password": "nope"}
        assert await served.status("POST", "/auth/login", json=wrong) == 401
        assert await served.status("GET", "/auth/me") == 401

    async def test_metrics_count_requests_by_route_and_status(self, serve: Serve) -> None:
        """/metrics counts by route template and status, with a histogram, and not itself."""
        served = await serve(SampleApp("v1", None))
        for _ in range(3):
            await served.status("GET", "/api")
        await served.status("GET", "/nowhere")
        await served.metrics()
        samples = await served.metrics()
        api = frozenset({("handler", "/api"), ("status", "200")})
        assert samples[("http_requests_total", api)] == 3.0
        assert (
            samples[("http_request_duration_seconds_count", frozenset({("handler", "/api")}))] == 3
        )
        bucket = frozenset({("handler", "/api"), ("le", "2.0")})
        assert samples[("http_request_duration_seconds_bucket", bucket)] == 3.0
        unmatched = frozenset({("handler", "unmatched"), ("status", "404")})
        assert samples[("http_requests_total", unmatched)] == 1.0
        assert not any(dict(labels).get("handler") == "/metrics" for _name, labels in samples)


class TestFaults:
    async def test_errors_fail_every_fourth_api_request(self, serve: Serve) -> None:
        """fault errors: /api answers 500 on calls 4 and 8, 200 otherwise; health stays 200."""
        served = await serve(SampleApp("v2", "errors"))
        statuses = [await served.status("GET", "/api") for _ in range(8)]
        assert statuses == [200, 200, 200, 500, 200, 200, 200, 500]
        assert await served.status("GET", "/health") == 200
        samples = await served.metrics()
        assert (
            samples[("http_requests_total", frozenset({("handler", "/api"), ("status", "500")}))]
            == 2
        )

    async def test_latency_slows_api_only(self, serve: Serve) -> None:
        """fault latency: /api lands in the histogram's slow bucket, /health does not."""
        served = await serve(SampleApp("v2", "latency", slow_seconds=0.3))
        assert await served.status("GET", "/api") == 200
        assert await served.status("GET", "/health") == 200
        samples = await served.metrics()
        fast = frozenset({("handler", "/api"), ("le", "0.25")})
        slow = frozenset({("handler", "/api"), ("le", "0.5")})
        assert samples[("http_request_duration_seconds_bucket", fast)] == 0.0
        assert samples[("http_request_duration_seconds_bucket", slow)] == 1.0

    async def test_auth_rejects_every_third_valid_token(self, serve: Serve) -> None:
        """fault auth: /auth/me refuses a valid token on calls 3 and 6."""
        served = await serve(SampleApp("v2", "auth"))
        token = await served.login()
        bearer = {"Authorization": f"Bearer {token}"}
        statuses = [await served.status("GET", "/auth/me", headers=bearer) for _ in range(6)]
        assert statuses == [200, 200, 401, 200, 200, 401]

    async def test_crash_happens_on_the_first_api_request(self, serve: Serve) -> None:
        """fault crash: health answers until /api is called; then the process would die."""
        crashes: list[bool] = []

        def crash() -> None:
            crashes.append(True)
            raise web.HTTPInternalServerError  # in place of os._exit, which ends pytest too

        served = await serve(SampleApp("v2", "crash", crash=crash))
        assert await served.status("GET", "/health") == 200
        assert crashes == []
        await served.status("GET", "/api")
        assert crashes == [True]
