"""The demo's sample app: a small aiohttp service that one release file can break.

Endpoints::

    GET  /health        200 {"status": "ok", "version": "v1"}
    GET  /api           200 {"version": "v1", "items": [...]}
    POST /auth/login    {"username", "password"} -> 200 {"access_token", "token_type"}, else 401
    GET  /auth/me       with "Authorization: Bearer <token>" -> 200 {"user"}, else 401
    POST /auth/logout   with the bearer token -> 200, and the token stops working
    GET  /metrics       http_requests_total{handler,status} and the
                        http_request_duration_seconds{handler} histogram (not counting itself)

The release's ``fault`` (see ``release``) decides how it misbehaves. Each fault is
deterministic, so a demo run tells the same story every time: every 4th ``/api`` request
fails (``errors``), ``/api`` takes 2.8 s (``latency``), every 3rd ``/auth/me`` refuses a
valid token (``auth``), or the first ``/api`` request kills the process (``crash``).

Run it as ``python -m watchdogd.demo.app ROOT``: it reads ``ROOT/app.json`` for its port and
the release ``ROOT/current`` names, and writes its pid to ``ROOT/app.ready`` once it listens.
It stops itself when the demo that owns it is gone, so even a demo killed with SIGKILL
leaves no app behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from watchdogd.demo import procs, release

PASSWORD = "demo-password"  # noqa: S105 - the demo's probe user; nothing is protected by it
SLOW_SECONDS = 2.8
# Finer than prometheus_client's defaults around the 2 s threshold, so that the scrape source,
# which reports each observation at its bucket's upper bound, says "3 s" and not "5 s".
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
CRASH_EXIT = 70

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _crash() -> None:
    # What a segfault or an uncaught error in a worker looks like from outside: gone, at once.
    print("demo app: crashing on the first /api request (fault: crash)", file=sys.stderr)
    sys.stderr.flush()
    os._exit(CRASH_EXIT)


class SampleApp:
    """The app's state and handlers for one release."""

    def __init__(
        self,
        version: str,
        fault: str | None,
        *,
        crash: Callable[[], None] = _crash,
        slow_seconds: float = SLOW_SECONDS,
    ) -> None:
        self.version = version
        self.fault = fault
        self._crash = crash
        self._slow_seconds = slow_seconds
        self._tokens: set[str] = set()
        self._api_calls = 0
        self._me_calls = 0
        # One line per counter, not two (see REFERENCE.md). The library leaves it untyped.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "http_requests_total",
            "Requests served, by handler and status.",
            ["handler", "status"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer a request.",
            ["handler"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._measure])
        app.add_routes(
            [
                web.get("/health", self.health),
                web.get("/api", self.api),
                web.post("/auth/login", self.login),
                web.get("/auth/me", self.me),
                web.post("/auth/logout", self.logout),
                web.get("/metrics", self.metrics),
            ]
        )
        return app

    @web.middleware
    async def _measure(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/metrics":
            return await handler(request)
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as err:
            status = err.status
            raise
        finally:
            # Route templates, not raw paths, so a scanner cannot grow the label set.
            resource = request.match_info.route.resource
            name = resource.canonical if resource is not None else "unmatched"
            self._requests.labels(name, str(status)).inc()
            self._duration.labels(name).observe(time.monotonic() - started)
        return response

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": self.version})

    async def api(self, _request: web.Request) -> web.Response:
        self._api_calls += 1
        if self.fault == "crash":
            self._crash()
        if self.fault == "latency":
            await asyncio.sleep(self._slow_seconds)
        if self.fault == "errors" and self._api_calls % 4 == 0:
            return web.json_response(
                {"error": "database timeout", "version": self.version}, status=500
            )
        return web.json_response({"version": self.version, "items": [1, 2, 3]})

    async def login(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "expected a JSON body"}, status=400)
        if not isinstance(body, dict) or body.get("password") != PASSWORD:
            return web.json_response({"error": "wrong username or password"}, status=401)
        token = secrets.token_urlsafe(16)
        self._tokens.add(token)
        return web.json_response({"access_token": token, "token_type": "Bearer"})

    def _token(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" and token in self._tokens else None

    async def me(self, request: web.Request) -> web.Response:
        self._me_calls += 1
        token = self._token(request)
        if token is None or (self.fault == "auth" and self._me_calls % 3 == 0):
            return web.json_response({"error": "invalid token"}, status=401)
        return web.json_response({"user": "probe", "version": self.version})

    async def logout(self, request: web.Request) -> web.Response:
        token = self._token(request)
        if token is None:
            return web.json_response({"error": "invalid token"}, status=401)
        self._tokens.discard(token)
        return web.json_response({"ok": True})

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )


async def serve(root: Path) -> None:
    """Serve the release ``root/current`` names until SIGTERM or the owner's death."""
    settings = release.AppSettings.read(root)
    version, fault = release.current(root)
    app = SampleApp(version, fault)
    # Unfinished requests (2.8 s ones, under the latency fault) must not hold up a restart.
    runner = web.AppRunner(app.build(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    # SO_REUSEPORT: the next release binds the port while this one still serves, so a restart
    # leaves no gap in which probes fail for reasons that are not the release's (app_ctl).
    site = web.TCPSite(runner, "127.0.0.1", settings.port, reuse_address=True, reuse_port=True)
    await site.start()
    release.announce_ready(root, os.getpid())
    where = f"127.0.0.1:{settings.port}, pid {os.getpid()}"
    print(f"demo app {version} (fault: {fault or 'none'}) on {where}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch = asyncio.create_task(_watch_owner(settings.owner_pid, stop))
    try:
        await stop.wait()
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await runner.cleanup()


async def _watch_owner(owner: int | None, stop: asyncio.Event) -> None:
    while owner is not None:
        await asyncio.sleep(1.0)
        if not procs.alive(owner):
            print(f"demo app: owner {owner} is gone; stopping", file=sys.stderr)
            stop.set()
            return


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m watchdogd.demo.app RELEASE_ROOT", file=sys.stderr)
        return 2
    asyncio.run(serve(Path(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
