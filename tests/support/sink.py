"""A tiny HTTP server on 127.0.0.1 that records requests and serves canned responses.

Use it as a webhook receiver (Alertmanager, notifications) or as a scrape target::

    sink = HttpSink()                       # or the ``http_sink`` fixture
    sink.respond("/metrics", "up_metric 1\\n")
    ...
    request = sink.wait_for(lambda r: r.path == "/hook", timeout=10)
    payload = request.json()
    sink.close()
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["HttpSink", "RecordedRequest"]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _path_is(path: str) -> Callable[[RecordedRequest], bool]:
    def matches(request: RecordedRequest) -> bool:
        return request.path == path

    return matches


class HttpSink:
    """Records every request; answers from :meth:`respond`'s table, else 200 ``ok``."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._responses: dict[str, tuple[int, str, bytes]] = {}
        self._lock = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = RecordedRequest(
                    self.command, parts.path, parts.query, dict(self.headers.items()), body
                )
                with sink._lock:
                    sink.requests.append(recorded)
                    status, ctype, payload = sink._responses.get(
                        parts.path, (200, "text/plain", b"ok\n")
                    )
                    sink._lock.notify_all()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http-sink", daemon=True
        )
        self._thread.start()

    def respond(
        self,
        path: str,
        body: str | bytes,
        status: int = 200,
        content_type: str = "text/plain; version=0.0.4",
    ) -> None:
        """Serve ``body`` with ``status`` for requests to ``path`` (any method)."""
        payload = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._responses[path] = (status, content_type, payload)

    def wait_for(
        self,
        predicate: Callable[[RecordedRequest], bool] | str,
        timeout: float = 30.0,
    ) -> RecordedRequest:
        """The first recorded request matching ``predicate`` (or with that path)."""
        matches = _path_is(predicate) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for request in self.requests:
                    if matches(request):
                        return request
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [f"{r.method} {r.path}" for r in self.requests]
                    raise TimeoutError(f"no matching request in {timeout} s; saw {seen}")
                self._lock.wait(remaining)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
