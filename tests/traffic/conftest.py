"""Fixtures of the traffic tests: a real HAProxy and two small HTTP apps, "blue" and "green".

The apps are aiohttp servers on free 127.0.0.1 ports in the test's own event loop; each answers
every path with its name, counts what it served, and can be told to answer with another status
or to take longer (``status``, ``delay``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from tests.support.haproxy import haproxy_factory

__all__ = ["Load", "ReleaseApp", "haproxy_factory", "release_app"]


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


class Load:
    """Clients that send requests through HAProxy until stopped and count every outcome:
    ``answers[(status, body)]`` (the body names the release) and ``failures[exception]``."""

    def __init__(self, url: str, *, workers: int = 8) -> None:
        self.url = url
        self.workers = workers
        self.answers: Counter[tuple[int, str]] = Counter()
        self.failures: Counter[str] = Counter()
        self._stopping = asyncio.Event()
        self._progress = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def total(self) -> int:
        return sum(self.answers.values()) + sum(self.failures.values())

    def served_by(self) -> Counter[str]:
        return Counter({body: n for (status, body), n in self.answers.items() if status == 200})

    async def __aenter__(self) -> Load:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks)
        assert self._session is not None
        await self._session.close()

    async def until(self, total: int, timeout: float = 30.0) -> None:
        """Wait until ``total`` requests have completed."""
        async with asyncio.timeout(timeout):
            while self.total < total:
                self._progress.clear()
                await self._progress.wait()

    async def _worker(self) -> None:
        assert self._session is not None
        while not self._stopping.is_set():
            try:
                async with self._session.get(self.url) as response:
                    self.answers[(response.status, await response.text())] += 1
            except (aiohttp.ClientError, TimeoutError) as err:
                self.failures[type(err).__name__] += 1
            self._progress.set()
