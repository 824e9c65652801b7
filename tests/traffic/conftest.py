"""Fixtures of the traffic tests: a real HAProxy and two small HTTP apps, "blue" and "green".

The apps are aiohttp servers on free 127.0.0.1 ports in the test's own event loop; each answers
every path with its name, counts what it served, and can be told to answer with another status
or to take longer (``status``, ``delay``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from tests.support.haproxy import haproxy_factory

__all__ = ["ReleaseApp", "haproxy_factory", "release_app"]


@dataclass
class ReleaseApp:
    name: str
    port: int = 0
    status: int = 200
    delay: float = 0.0
    served: int = 0
    entered: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    runner: web.AppRunner | None = field(default=None, repr=False)

    async def handle(self, _request: web.Request) -> web.Response:
        self.entered.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.served += 1
        return web.Response(status=self.status, text=self.name)


@pytest.fixture
async def release_app() -> AsyncIterator[Callable[[str], Awaitable[ReleaseApp]]]:
    """``await release_app("blue")`` starts an app named "blue" on a free port."""
    apps: list[ReleaseApp] = []

    async def start(name: str) -> ReleaseApp:
        app = ReleaseApp(name)
        server = web.Application()
        server.router.add_route("*", "/{tail:.*}", app.handle)
        app.runner = web.AppRunner(server, access_log=None)
        await app.runner.setup()
        site = web.TCPSite(app.runner, "127.0.0.1", 0)
        await site.start()
        app.port = app.runner.addresses[0][1]
        apps.append(app)
        return app

    yield start
    for app in apps:
        if app.runner is not None:
            await app.runner.cleanup()
