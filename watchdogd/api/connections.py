"""A cap on open HTTP connections, so that idle ones cannot use up the file descriptors.

aiohttp closes a connection that has not sent a request's headers within ``keepalive_timeout``
(counted from connect, and from each response on): that is the header timeout. What it lacks
is a cap. ``CappedSite`` is aiohttp's ``TCPSite`` whose protocol factory counts connections:
at the cap, a new connection closes the oldest one that has no request in a handler (idle, or
still sending its headers: nothing authenticated has happened on it), so that a flood of idle
connections cannot lock out ``/healthz``, Prometheus or Alertmanager. If every connection is
busy, the new one is closed at once. The cap is at most half the soft ``RLIMIT_NOFILE``: the
other half stays for probes, the store and the Docker engine, and the listen queue is
short (``cap / 8``), because asyncio accepts a whole queue before it can refuse any of it.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = ["BUSY", "CappedSite", "connection_cap", "track_busy"]

log = structlog.get_logger(__name__)

#: The connections with a request in a handler right now (set by ``track_busy``).
BUSY = web.AppKey("busy_connections", set[RequestHandler])
#: A handler not connected after this long never will be (the accept failed).
PENDING = 1.0


def connection_cap(configured: int) -> int:
    """``configured``, lowered to half the process's soft file limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft // 2))


@web.middleware
async def track_busy(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    busy = request.app[BUSY]
    protocol = request.protocol
    busy.add(protocol)
    try:
        return await handler(request)
    finally:
        busy.discard(protocol)


class _Refused(asyncio.Protocol):
    """Closes the connection it is given: every slot is busy."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _CappedFactory:
    def __init__(self, server: web.Server, busy: set[RequestHandler], cap: int) -> None:
        self._server = server
        self._busy = busy
        self._cap = cap
        self.evicted = 0
        # Handlers made but not yet connected: asyncio calls the factory for a whole burst of
        # accepted sockets before any of them is connected (and listed by the server).
        self._pending: list[tuple[float, RequestHandler]] = []

    def __call__(self) -> asyncio.Protocol:
        now = time.monotonic()
        listed = self._server.connections  # oldest first
        known = set(listed)
        self._pending = [
            (made, handler)
            for made, handler in self._pending
            if handler not in known and handler.transport is None and now - made < PENDING
        ]
        # A closed connection stays listed until asyncio reports it lost: it has no transport.
        open_ = [c for c in listed if c.transport is not None]
        excess = len(open_) + len(self._pending) + 1 - self._cap
        for connection in open_:
            if excess <= 0:
                break
            if connection not in self._busy:
                connection.force_close()
                excess -= 1
                self._note_eviction()
        if excess > 0:
            return _Refused()
        handler = self._server()
        self._pending.append((now, handler))
        return handler

    def _note_eviction(self) -> None:
        self.evicted += 1
        if self.evicted in (1, 10, 100) or self.evicted % 1000 == 0:
            log.warning(
                "connection_cap_closing_idle",
                cap=self._cap,
                closed_so_far=self.evicted,
            )


class CappedSite(web.TCPSite):
    """``TCPSite`` with at most ``cap`` connections open (see the module's docstring)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, cap: int) -> None:
        # asyncio accepts up to ``backlog`` sockets in one go before any is refused and
        # closed: a short queue keeps a burst from taking the file descriptors first.
        super().__init__(runner, host, port, backlog=max(4, min(128, cap // 8)))
        self._cap = cap

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        server = self._runner.server
        app = getattr(self._runner, "app", None)
        if server is None or app is None:
            raise RuntimeError("call runner.setup() before starting the site")
        factory = _CappedFactory(server, app[BUSY], self._cap)
        self._server = await asyncio.get_running_loop().create_server(
            factory, self._host, self._port, backlog=self._backlog, reuse_address=True
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]
