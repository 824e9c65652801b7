"""The HTTP surface: ``/metrics``, health, the Alertmanager webhook and the control API.

Built on aiohttp's server. Every handler validates before it acts: a request that is refused
(401, 400, 404, 413) changes no state. Mutating endpoints need ``Authorization: Bearer <token>``,
compared in constant time. Read-only endpoints are open to whoever can reach the listen
address, which is loopback by default, as with Prometheus' own API.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib
import ipaddress
import json
import re
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from watchdogd.api.connections import BUSY, track_busy
from watchdogd.config.schema import ServerSettings
from watchdogd.errors import ControlRefused
from watchdogd.metrics.registry import Metrics

if TYPE_CHECKING:
    from watchdogd.api.alertmanager import WebhookPayload

log = structlog.get_logger(__name__)

CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"
MAX_PAGE = 500
#: An events page stops at this many bytes of JSON too (one event at least).
MAX_PAGE_BYTES = 1024 * 1024
#: The webhook's payload models: pydantic (about 8 MB) is for Alertmanager's deliveries only.
PAYLOADS = "watchdogd.api.alertmanager"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class Control(Protocol):
    """What the server asks of the daemon."""

    def readiness(self) -> list[str]:
        """Reasons the daemon is not ready; empty when it is."""

    def target_names(self) -> list[str]: ...

    def target_status(self, name: str) -> dict[str, Any]:
        """Raises KeyError for an unknown target."""

    async def rollback(self, name: str, to: str | None, reason: str) -> dict[str, Any]: ...

    async def freeze(self, name: str, reason: str) -> dict[str, Any]: ...

    async def unfreeze(self, name: str) -> dict[str, Any]: ...

    async def unquarantine(self, name: str, image: str) -> dict[str, Any]: ...

    async def deploy(self, name: str, image: str) -> dict[str, Any]: ...

    async def deploy_status(self, name: str, deploy_id: str | None) -> dict[str, Any]: ...

    async def deploy_order(self, name: str, order: str) -> dict[str, Any]: ...

    def events(
        self, limit: int, before: int | None, target: str | None
    ) -> list[dict[str, Any]]: ...

    async def receive_alerts(self, payload: WebhookPayload) -> dict[str, Any]: ...


def build_app(
    control: Control,
    metrics: Metrics,
    token: Callable[[], str | None],
    max_body: int,
    *,
    server: ServerSettings | None = None,
    listen_host: str = "127.0.0.1",
) -> web.Application:
    """The app; ``token`` is asked on every request, so a reload rotates the API token."""
    settings = server or ServerSettings()
    hosts = frozenset(h.lower().rstrip(".") for h in (*settings.hosts, listen_host, "localhost"))
    app = web.Application(
        client_max_size=max_body,
        middlewares=[track_busy, _check_host(hosts, metrics), _refuse_encoded_bodies(metrics)],
    )
    app[BUSY] = set()
    handlers = _Handlers(control, metrics, token, settings.body_timeout)
    app.add_routes(
        [
            web.get("/metrics", handlers.metrics),
            web.get("/healthz", handlers.healthz),
            web.get("/readyz", handlers.readyz),
            web.post("/hooks/alertmanager", handlers.alertmanager),
            web.get("/api/v1/openapi.json", handlers.openapi),
            web.get("/api/v1/targets", handlers.targets),
            web.get("/api/v1/targets/{name}", handlers.target),
            web.post("/api/v1/targets/{name}/rollback", handlers.rollback),
            web.post("/api/v1/targets/{name}/freeze", handlers.freeze),
            web.post("/api/v1/targets/{name}/unfreeze", handlers.unfreeze),
            web.post("/api/v1/targets/{name}/unquarantine", handlers.unquarantine),
            web.post("/api/v1/targets/{name}/deploy", handlers.deploy),
            web.get("/api/v1/targets/{name}/deploy", handlers.deploy_status),
            web.post("/api/v1/targets/{name}/deploy/{order}", handlers.deploy_order),
            web.get("/api/v1/events", handlers.events),
        ]
    )
    return app


def make_runner(app: web.Application, server: ServerSettings) -> web.AppRunner:
    """aiohttp's runner with the limits of ``server``: ``keepalive_timeout`` closes a
    connection that sends no complete headers in time (from connect, and between requests),
    and bodies are never decompressed (a small gzip body can stand for gigabytes)."""
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=server.header_timeout,
        auto_decompress=False,
        max_line_size=8190,
        max_field_size=8190,
        max_headers=64,
    )


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _host_name(header: str) -> str:
    """The host part of a ``Host`` header, lower case, without port or trailing dot."""
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _check_host(allowed: frozenset[str], metrics: Metrics) -> Middleware:
    """Answer only requests addressed to us: an IP address, ``localhost``, the listen host or a
    name in ``server.hosts``. A page that rebinds its own DNS name to 127.0.0.1 sends that name
    as ``Host`` and is refused, so it cannot read the API from a browser (421)."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Host")
        if header is None:
            return await handler(request)  # HTTP/1.0 tools; browsers always send Host
        name = _host_name(header)
        try:
            ipaddress.ip_address(name)
        except ValueError:
            if name not in allowed:
                metrics.webhook_rejected.labels("host").inc()
                shown = name.encode("ascii", "backslashreplace").decode()[:100]
                return _error(
                    421, f"this server does not answer to host {shown!r}; see server.hosts"
                )
        return await handler(request)

    return check_host


def _refuse_encoded_bodies(metrics: Metrics) -> Middleware:
    """Compressed bodies are refused before any other work (bodies are never decompressed)."""

    @web.middleware
    async def refuse_encoded(request: web.Request, handler: Handler) -> web.StreamResponse:
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            metrics.webhook_rejected.labels("compressed").inc()
            return _error(415, "compressed request bodies are not accepted; send plain JSON")
        return await handler(request)

    return refuse_encoded


class _Handlers:
    def __init__(
        self,
        control: Control,
        metrics: Metrics,
        token: Callable[[], str | None],
        body_timeout: float,
    ) -> None:
        self._control = control
        self._metrics = metrics
        self._token = token
        self._body_timeout = body_timeout

    # --- auth and body helpers -------------------------------------------------------------

    def _refuse_unauthorized(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        configured = self._token()
        if not configured:
            self._metrics.webhook_rejected.labels("no_token_configured").inc()
            return _error(401, "watchdogd has no API token configured (api_token_file)")
        # compare_digest on bytes of any length: no early exit that leaks the token's prefix.
        # aiohttp decodes header bytes as UTF-8 with surrogateescape: encode back the same way,
        # so that a non-UTF-8 header is a wrong token (401), not an error (500).
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode("utf-8", "surrogateescape"), configured.encode()
        ):
            self._metrics.webhook_rejected.labels("unauthorized").inc()
            return _error(401, "missing or wrong bearer token")
        return None

    async def _json_body(self, request: web.Request, *, optional: bool = False) -> Any:
        try:
            async with asyncio.timeout(self._body_timeout):
                raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._metrics.webhook_rejected.labels("too_large").inc()
            raise
        except TimeoutError:
            self._metrics.webhook_rejected.labels("timeout").inc()
            raise web.HTTPRequestTimeout(
                text=json.dumps({"error": "the request body was not sent in time"}),
                content_type="application/json",
            ) from None
        if not raw and optional:
            return {}
        try:
            value = json.loads(raw.decode("utf-8"))  # RFC 8259: JSON between systems is UTF-8
            # "\ud800" escapes decode to lone surrogates, which neither SQLite nor a log line
            # can encode: refuse them here rather than fail later with a 500. Only a body with
            # such an escape can hold one, and only then is the (1 MiB: ~10 ms) check made.
            if _SURROGATE_ESCAPE.search(raw):
                json.dumps(value, ensure_ascii=False).encode("utf-8")
        # RecursionError: a body of nothing but "[[[[…" nests deeper than the parser recurses.
        except (ValueError, RecursionError) as err:
            self._metrics.webhook_rejected.labels("malformed").inc()
            raise web.HTTPBadRequest(
                text=json.dumps({"error": f"malformed JSON: {err}"}),
                content_type="application/json",
            ) from None
        return value

    # --- probes and metrics ----------------------------------------------------------------

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_METRICS}
        )

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        reasons = self._control.readiness()
        if reasons:
            return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready"})

    async def openapi(self, _request: web.Request) -> web.Response:
        # The document is built when first asked for: a daemon nobody asks keeps no copy.
        from watchdogd.api.openapi import OPENAPI  # noqa: PLC0415

        return web.json_response(OPENAPI)

    # --- Alertmanager ----------------------------------------------------------------------

    async def alertmanager(self, request: web.Request) -> web.Response:
        refused = self._refuse_unauthorized(request)
        if refused is not None:
            return refused
        body = await self._json_body(request)
        if PAYLOADS not in sys.modules:
            # The first delivery imports the payload models, in a thread: the event loop
            # serves other requests meanwhile.
            await asyncio.to_thread(importlib.import_module, PAYLOADS)
        from watchdogd.api.alertmanager import PayloadError, validate_payload  # noqa: PLC0415

        try:
            payload = await validate_payload(body)
        except PayloadError as err:
            self._metrics.webhook_rejected.labels("schema").inc()
            return _error(400, f"not an Alertmanager v4 payload: {err}")
        return await self._act(self._control.receive_alerts(payload), 200)

    # --- control API -----------------------------------------------------------------------

    async def targets(self, _request: web.Request) -> web.Response:
        names = self._control.target_names()
        return web.json_response({"targets": [self._control.target_status(n) for n in names]})

    async def target(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(self._control.target_status(request.match_info["name"]))
        except KeyError:
            return _error(404, f"no target named {request.match_info['name']!r}")

    async def rollback(self, request: web.Request) -> web.Response:
        refused = self._refuse_unauthorized(request)
        if refused is not None:
            return refused
        body = await self._json_body(request, optional=True)
        if not isinstance(body, dict):
            return _error(400, 'expected a JSON object like {"reason": "…"}')
        to, reason = body.get("to"), body.get("reason", "requested through the API")
        if not (to is None or isinstance(to, str)) or not isinstance(reason, str):
            return _error(400, '"to" and "reason" must be strings')
        return await self._act(
            self._control.rollback(request.match_info["name"], to, reason[:500]), 202
        )

    async def freeze(self, request: web.Request) -> web.Response:
        refused = self._refuse_unauthorized(request)
        if refused is not None:
            return refused
        body = await self._json_body(request, optional=True)
        reason = body.get("reason", "frozen through the API") if isinstance(body, dict) else None
        if not isinstance(reason, str):
            return _error(400, '"reason" must be a string')
        return await self._act(self._control.freeze(request.match_info["name"], reason[:500]), 200)

    async def unfreeze(self, request: web.Request) -> web.Response:
        refused = self._refuse_unauthorized(request)
        if refused is not None:
            return refused
        return await self._act(self._control.unfreeze(request.match_info["name"]), 200)

    async def unquarantine(self, request: web.Request) -> web.Response:
        refused = self._refuse_unauthorized(request)
        if refused is not None:
            return refused
        body = await self._json_body(request)
        image = body.get("image") if isinstance(body, dict) else None
        if not isinstance(image, str) or not image:
            return _error(400, 'expected {"image": "<image digest or ID>"}')
        name = request.match_info["name"]
        return await self._act(self._control.unquarantine(name, image[:500]), 200)

    async def deploy(self, request: web.Request) -> web.Response:
        refused = self._refuse_unauthorized(request)
        if refused is not None:
            return refused
        body = await self._json_body(request)
        image = body.get("image") if isinstance(body, dict) else None
        if not isinstance(image, str) or not image.strip() or len(image) > 500:
            return _error(400, 'expected {"image": "<image reference>"}')
        return await self._act(self._control.deploy(request.match_info["name"], image.strip()), 202)

    async def deploy_status(self, request: web.Request) -> web.Response:
        name, deploy_id = request.match_info["name"], request.query.get("id")
        return await self._act(self._control.deploy_status(name, deploy_id), 200)

    async def deploy_order(self, request: web.Request) -> web.Response:
        refused = self._refuse_unauthorized(request)
        if refused is not None:
            return refused
        name, order = request.match_info["name"], request.match_info["order"]
        return await self._act(self._control.deploy_order(name, order), 200)

    async def _act(self, action: Any, status: int) -> web.Response:
        try:
            result = await action
        except ControlRefused as err:
            return _error(err.status, err.message)
        return web.json_response(result, status=status)

    async def events(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            limit = min(int(query.get("limit", "100")), MAX_PAGE)
            before = int(query["before"]) if "before" in query else None
        except ValueError:
            return _error(400, '"limit" and "before" must be integers')
        if limit < 1:
            return _error(400, '"limit" must be at least 1')
        if before is not None and not -(2**63) <= before < 2**63:
            return _error(400, '"before" is out of range')  # SQLite integers are 64-bit
        target = query.get("target")
        try:
            events = self._control.events(limit, before, target)
        except ControlRefused as err:
            return _error(err.status, err.message)
        full = len(events) == limit
        size = 0
        for index, event in enumerate(events):
            size += len(json.dumps(event))
            if size > MAX_PAGE_BYTES and index > 0:
                events, full = events[:index], True
                break
        next_before = events[-1]["id"] if full and events else None
        return web.json_response({"events": events, "next_before": next_before})
