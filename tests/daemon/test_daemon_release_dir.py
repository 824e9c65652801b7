"""The daemon as a real process: a release-directory target goes bad and is rolled back, and
the HTTP surface, the notify protocol and reload behave as documented. No Docker needed."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.daemon import TOKEN, DaemonProcess, NotifySocket, start_daemon
from tests.support.waiting import wait_for


class AppHandler(BaseHTTPRequestHandler):
    """An app whose behaviour is the file `mode` of the release `current` points to."""

    root: Path

    def do_GET(self) -> None:
        mode = (self.root / "current" / "mode").read_text().strip()
        status = 500 if mode == "500" else 200
        body = json.dumps({"mode": mode}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class NotifySink(BaseHTTPRequestHandler):
    received: list[dict[str, object]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    for version, mode in (("v1", "ok"), ("v2", "500")):
        (root / "releases" / version).mkdir(parents=True)
        (root / "releases" / version / "mode").write_text(mode)
    (root / "current").symlink_to(root / "releases" / "v1")
    return root


@pytest.fixture
def app(release_dir: Path) -> Iterator[int]:
    handler = type("Handler", (AppHandler,), {"root": release_dir})
    server = serve(handler)
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def sink() -> Iterator[tuple[int, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []
    server = serve(type("Sink", (NotifySink,), {"received": received}))
    yield server.server_address[1], received
    server.shutdown()


def write_config(
    path: Path, *, port: int, app_port: int, sink_port: int, release_dir: Path, state: Path
) -> str:
    text = f"""\
listen: 127.0.0.1:{port}
api_token_file: {path.parent / "token"}
state_dir: {state}
log: {{format: json, level: info}}
docker: {{poll_interval: 500ms}}
defaults: {{window: 1m, bake_time: 2s, cooldown: 1m}}
notify:
  - {{name: team, url: "json://127.0.0.1:{sink_port}/hook"}}
targets:
  - name: app
    release_dir: {{path: {release_dir}, restart: [/bin/true]}}
    checks:
      - {{name: api, type: http, url: "http://127.0.0.1:{app_port}/api",
         interval: 200ms, timeout: 1s}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
    playbook:
      - notify: team
      - rollback: {{}}
      - wait_healthy: {{timeout: 20s}}
      - notify: team
"""
    (path.parent / "token").write_text(TOKEN + "\n")
    path.write_text(text)
    return text


@pytest.fixture
def daemon(
    tmp_path: Path,
    daemon_port: int,
    app: int,
    sink: tuple[int, list[dict[str, object]]],
    release_dir: Path,
    notify_socket: NotifySocket,
) -> Iterator[DaemonProcess]:
    config = tmp_path / "watchdogd.yaml"
    write_config(
        config,
        port=daemon_port,
        app_port=app,
        sink_port=sink[0],
        release_dir=release_dir,
        state=tmp_path / "state",
    )
    process = start_daemon(
        config,
        daemon_port,
        tmp_path,
        {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "1000000"},
    )
    process.wait_ready()
    yield process
    process.stop()


class TestRollbackOfAReleaseDirectory:
    def test_bad_release_is_rolled_back_and_quarantined(
        self, daemon: DaemonProcess, release_dir: Path, sink: tuple[int, list[dict[str, object]]]
    ) -> None:
        """v1 bakes to known-good; v2 answers 500s; watchdogd points `current` back at v1."""
        daemon.wait_state("app", "healthy")
        temporary = release_dir / "current.deploy"
        temporary.symlink_to(release_dir / "releases" / "v2")
        os.replace(temporary, release_dir / "current")  # a deploy script's atomic switch

        status = daemon.wait_state("app", "rolled_back")
        assert os.readlink(release_dir / "current").endswith("v1")
        assert status["current_release"]["image"] == "v1"
        assert [q["image"] for q in status["quarantined"]] == ["v2"]
        events = [e["event"] for e in sink[1]]
        assert len(events) == 2, events
        assert sink[1][0]["target"] == "app"
        metrics = daemon.get("/metrics").text
        assert (
            'watchdogd_rollbacks_total{result="succeeded",target="app",trigger="gate"} 1.0'
            in metrics
        )
        unquarantine = "/api/v1/targets/app/unquarantine"
        assert daemon.post(unquarantine, {"image": "v2"}, token=None).status_code == 401
        assert daemon.post(unquarantine, {"image": "v2"}).status_code == 200
        assert daemon.target("app")["quarantined"] == []
        assert daemon.post(unquarantine, {"image": "v2"}).status_code == 404
        kinds = [e["kind"] for e in daemon.get("/api/v1/events?limit=100").json()["events"]]
        assert "unquarantined" in kinds
        assert "new_release" in kinds
        assert "known_good" in kinds


class TestHttpSurface:
    def test_health_ready_and_metric_names(self, daemon: DaemonProcess) -> None:
        """/healthz and /readyz answer 200; /metrics carries the documented names."""
        assert daemon.get("/healthz").status_code == 200
        assert daemon.get("/readyz").json() == {"status": "ready"}
        daemon.wait_state("app", "healthy")
        text = daemon.get("/metrics").text
        for name in (
            "watchdogd_build_info",
            'watchdogd_target_state{state="healthy",target="app"} 1.0',
            "watchdogd_window_requests",
            "watchdogd_window_error_ratio",
            "watchdogd_window_latency_seconds",
            "watchdogd_gate_breached",
            "watchdogd_probe_duration_seconds_bucket",
            "watchdogd_probes_total",
        ):
            assert name in text, name

    def test_webhook_refuses_bad_requests_without_changing_state(
        self, daemon: DaemonProcess
    ) -> None:
        """401 without or with a wrong token, 400 for bad JSON or schema, 413 over the limit."""
        alert = {
            "version": "4",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "x"},
                    "startsAt": "2026-01-01T00:00:00Z",
                    "fingerprint": "abc",
                }
            ],
        }
        assert daemon.post("/hooks/alertmanager", alert, token=None).status_code == 401
        assert daemon.post("/hooks/alertmanager", alert, token="wrong").status_code == 401
        assert daemon.post("/hooks/alertmanager", raw=b"{not json").status_code == 400
        assert daemon.post("/hooks/alertmanager", {"version": "3"}).status_code == 400
        assert daemon.post("/hooks/alertmanager", raw=b"x" * (2 * 1024 * 1024)).status_code == 413
        # One read (two raced with the target's own bake events): nothing of the alert.
        kinds = {e["kind"] for e in daemon.get("/api/v1/events?limit=500").json()["events"]}
        assert not kinds & {
            "alert_resolved",
            "alert_ignored",
            "rollback_refused",
            "incident_started",
        }
        assert daemon.metric("watchdogd_alerts_received_total") is None

    def test_control_api_needs_the_token(self, daemon: DaemonProcess) -> None:
        """freeze with no token is 401; with it the target is frozen, then unfrozen."""
        assert daemon.post("/api/v1/targets/app/freeze", {}, token=None).status_code == 401
        assert daemon.target("app")["state"] != "frozen"
        assert (
            daemon.post("/api/v1/targets/app/freeze", {"reason": "deploy window"}).json()["state"]
            == "frozen"
        )
        assert daemon.post("/api/v1/targets/app/unfreeze").json()["state"] == "baking"
        assert daemon.post("/api/v1/targets/nope/freeze", {}).status_code == 404

    def test_openapi_lists_every_route(self, daemon: DaemonProcess) -> None:
        """The OpenAPI document names each path the server answers."""
        paths = daemon.get("/api/v1/openapi.json").json()["paths"]
        assert {"/hooks/alertmanager", "/api/v1/targets/{name}/rollback", "/api/v1/events"} <= set(
            paths
        )


class TestProcessLifeCycle:
    def test_notify_protocol_reload_and_stop(
        self, daemon: DaemonProcess, notify_socket: NotifySocket
    ) -> None:
        """READY and WATCHDOG at start, RELOADING/READY around SIGHUP, STOPPING at SIGTERM."""
        notify_socket.wait_for("READY=1")
        notify_socket.wait_for("WATCHDOG=1")
        daemon.process.send_signal(signal.SIGHUP)
        notify_socket.wait_for("RELOADING=1")
        assert daemon.stop() == 0
        notify_socket.wait_for("STOPPING=1")

    def test_invalid_config_on_reload_keeps_the_old_one(self, daemon: DaemonProcess) -> None:
        """SIGHUP with a broken file: the daemon keeps running and says so in log and metric."""
        daemon.wait_state("app", "healthy")
        daemon.config.write_text(daemon.config.read_text().replace("above: 1%", "above: lots"))
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(
            "the failed reload to show in /metrics",
            lambda: daemon.metric("watchdogd_config_last_reload_successful") == 0.0,
            timeout=10,
            context=lambda: daemon.log.read_text()[-2000:],
        )
        assert daemon.process.poll() is None
        assert daemon.target("app")["state"] == "healthy"
        assert "config_reload_failed" in daemon.log.read_text()
