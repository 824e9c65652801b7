"""The demo's last word on the restored release: ``answers_within`` asks the health endpoint
again until it answers as the good release, so a slow machine is not called a failed demo."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from watchdogd.demo.stage import answers_within

# Serves /health answering the given versions in turn, then the last one for good; its URL.
HealthServer = Callable[[list[str]], Awaitable[str]]


@pytest.fixture
async def health_server() -> AsyncIterator[HealthServer]:
    runners: list[web.AppRunner] = []

    async def start(versions: list[str]) -> str:
        answered = 0

        async def health(_request: web.Request) -> web.Response:
            nonlocal answered
            version = versions[min(answered, len(versions) - 1)]
            answered += 1
            return web.json_response({"version": version})

        app = web.Application()
        app.router.add_get("/health", health)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/health"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_a_release_that_answers_late_is_seen(health_server: HealthServer) -> None:
    url = await health_server(["v2", "v2", "v1"])
    ok, seen = await answers_within(url, "v1", seconds=5.0, every=0.01)
    assert ok
    assert seen == f"{url} answers 200 as v1"


async def test_gives_up_after_its_time_with_what_it_saw_last(health_server: HealthServer) -> None:
    url = await health_server(["v2"])
    ok, seen = await answers_within(url, "v1", seconds=0.3, every=0.01)
    assert not ok
    assert seen == f"{url} answers 200 as v2"
