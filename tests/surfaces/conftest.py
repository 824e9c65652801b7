"""Shared pieces of the surface tests: a release-directory app and real daemon processes.

The app is a tiny HTTP server whose behaviour is the file ``mode`` of the release that
``current`` points to, so no Docker is needed to deploy, break and roll back a release.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.daemon import TOKEN, DaemonProcess, start_daemon
from tests.support.ports import free_port
from tests.support.waiting import wait_for

__all__ = ["DOCUMENTED_METRICS", "TOKEN", "DaemonFactory", "ReleaseApp", "alert_payload"]

#: The metric names issue 5 promises (histograms by their base name).
DOCUMENTED_METRICS = (
    "watchdogd_target_state",
    "watchdogd_window_requests",
    "watchdogd_window_error_ratio",
    "watchdogd_window_latency_seconds",
    "watchdogd_gate_breached",
    "watchdogd_container_healthy",
    "watchdogd_probe_duration_seconds",
    "watchdogd_probes_total",
    "watchdogd_rollbacks_total",
    "watchdogd_rollback_duration_seconds",
    "watchdogd_last_rollback_timestamp_seconds",
    "watchdogd_release_info",
    "watchdogd_alerts_received_total",
    "watchdogd_build_info",
)
HISTOGRAMS = ("watchdogd_probe_duration_seconds", "watchdogd_rollback_duration_seconds")


class _AppHandler(BaseHTTPRequestHandler):
    root: Path

    def do_GET(self) -> None:
        mode = (self.root / "current" / "mode").read_text().strip()
        body = json.dumps({"mode": mode}).encode()
        self.send_response(500 if mode == "500" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class ReleaseApp:
    """``root/releases/{v1,v2}`` with a ``current`` symlink, served on ``port``."""

    root: Path
    port: int

    def deploy(self, version: str) -> None:
        """Switch ``current`` atomically, as a deploy script does."""
        temporary = self.root / "current.deploy"
        temporary.symlink_to(self.root / "releases" / version)
        os.replace(temporary, self.root / "current")

    def current(self) -> str:
        return Path(os.readlink(self.root / "current")).name


@contextlib.contextmanager
def serve_release_app(root: Path, modes: dict[str, str]) -> Iterator[ReleaseApp]:
    """Create ``root/releases/<version>/mode`` for each of ``modes``, point ``current`` at the
    first, and serve the app until the block ends."""
    for version, mode in modes.items():
        (root / "releases" / version).mkdir(parents=True)
        (root / "releases" / version / "mode").write_text(mode)
    (root / "current").symlink_to(root / "releases" / next(iter(modes)))
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("App", (_AppHandler,), {"root": root}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield ReleaseApp(root, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def release_app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ReleaseApp]:
    """v1 answers 200; v2 answers 500, or 200 with ``@pytest.mark.parametrize`` of
    ``release_app`` set to ``{"v2": "ok"}`` (indirect)."""
    modes = {"v1": "ok", "v2": "500", **getattr(request, "param", {})}
    with serve_release_app(tmp_path / "app", modes) as app:
        yield app


def release_dir_config(
    *,
    port: int,
    state: Path,
    token_file: Path,
    app: ReleaseApp,
    gates: bool = True,
    alerts: bool = True,
    extra_targets: str = "",
    server: str = "",
) -> str:
    """A daemon config with one release-directory target, ``app``; ``server`` is the inside
    of the ``server:`` mapping, e.g. ``"header_timeout: 1s"``."""
    gate = "    gates:\n      - {check: api, metric: error_rate, above: 1%}\n" if gates else ""
    rule = "    alerts:\n      - match: {service: app, severity: critical}\n" if alerts else ""
    return f"""\
listen: 127.0.0.1:{port}
api_token_file: {token_file}
state_dir: {state}
log: {{format: json, level: info}}
docker: {{poll_interval: 300ms}}
server: {{{server}}}
defaults: {{window: 1m, bake_time: 1s, cooldown: 1h}}
targets:
  - name: app
    release_dir: {{path: {app.root}, restart: [/bin/true]}}
    checks:
      - {{name: api, type: http, url: "http://127.0.0.1:{app.port}/api",
         interval: 200ms, timeout: 1s}}
{gate}{rule}    playbook:
      - rollback: {{}}
      - wait_healthy: {{timeout: 20s}}
{extra_targets}"""


DaemonFactory = Callable[..., DaemonProcess]


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[DaemonFactory]:
    """``daemon_factory(app, **release_dir_config options)`` → a ready daemon process."""
    started: list[DaemonProcess] = []

    def start(app: ReleaseApp, env: dict[str, str] | None = None, **options: Any) -> DaemonProcess:
        workdir = tmp_path / f"daemon{len(started)}"
        workdir.mkdir()
        port = free_port()
        token_file = workdir / "token"
        token_file.write_text(TOKEN + "\n")
        config = workdir / "watchdogd.yaml"
        config.write_text(
            release_dir_config(
                port=port, state=workdir / "state", token_file=token_file, app=app, **options
            )
        )
        process = start_daemon(config, port, workdir, env)
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()


def events(daemon: DaemonProcess, kind: str | None = None) -> list[dict[str, Any]]:
    """The whole audit log, newest first (optionally one kind only)."""
    found = daemon.get("/api/v1/events?limit=500").json()["events"]
    return [e for e in found if kind is None or e["kind"] == kind]


def bake_v2(daemon: DaemonProcess, app: ReleaseApp) -> dict[str, Any]:
    """v1 bakes to known-good, then v2 is deployed and bakes too: ready for an alert."""
    daemon.wait_state("app", "healthy")
    app.deploy("v2")
    wait_for("v2 to be seen", lambda: events(daemon, "new_release"))
    return daemon.wait_state("app", "healthy")


def alert_payload(
    *,
    status: str = "firing",
    labels: dict[str, str] | None = None,
    fingerprint: str = "f00dfeed00000001",
    starts_at: str = "2026-01-01T00:00:00Z",
    extra_alerts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An Alertmanager webhook body (version 4) around one alert."""
    alert = {
        "status": status,
        "labels": labels or {"alertname": "AppDown", "service": "app", "severity": "critical"},
        "annotations": {"summary": "app is down"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-01T00:05:00Z",
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": fingerprint,
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="AppDown"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "watchdogd",
        "groupLabels": {"alertname": "AppDown"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example",
        "alerts": [alert, *(extra_alerts or [])],
    }


def metric_value(daemon: DaemonProcess, name: str, **labels: str) -> float | None:
    """The value of one series in the daemon's own /metrics, or None when absent."""
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    for line in daemon.get("/metrics").text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric == name and wanted <= set(label_text.rstrip("}").split(",")) - {""}:
            return float(value)
    return None


def http_client() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=10)
