"""Reliability helpers: the real daemon watching a release directory served by a local app,
and a read-only bind mount of a directory.

The suite (tests/reliability) covers what the issue lists beyond the end-to-end tests:

* the Docker engine stopped for 30 s and started again (``test_engine_outage``);
* ``state_dir`` made read-only under a running daemon (``test_store_readonly``);
* the probed network disappearing (``test_network_loss``);
* start-up: one daemon per ``state_dir``, the address bound before anything is resumed, one
  line and exit 3 for every environment error (``test_startup``);
* SIGHUP: the token rotates, notifiers and log settings are rebuilt, restart-only keys are
  refused by name; ``wait_healthy`` never passes on samples from before the restore
  (``test_reload``).

Elsewhere: SIGHUP with an invalid config is ``tests/daemon/test_daemon_release_dir.py``
(``test_invalid_config_on_reload_keeps_the_old_one``); SIGKILL at each playbook step,
``tests/e2e/test_crash_resume.py``; duplicate deliveries,
``tests/surfaces/test_alert_idempotency.py``; 10 000 fuzzed requests,
``tests/surfaces/test_fuzz.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import require
from tests.support.daemon import DaemonProcess
from tests.support.waiting import wait_for as support_wait_for


class ReleaseApp(BaseHTTPRequestHandler):
    """Answers 200, or 500 when the release ``current`` points to holds a file ``broken``."""

    root: Path

    def do_GET(self) -> None:
        broken = (self.root / "current" / "broken").exists()
        body = json.dumps({"release": (self.root / "current").resolve().name}).encode()
        self.send_response(500 if broken else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    """``app/releases/v1`` (good), ``v2`` (answers 500) and ``current`` -> v1."""
    root = tmp_path / "app"
    (root / "releases" / "v1").mkdir(parents=True)
    (root / "releases" / "v2").mkdir(parents=True)
    (root / "releases" / "v2" / "broken").touch()
    (root / "current").symlink_to(root / "releases" / "v1")
    return root


@pytest.fixture
def app_port(release_dir: Path) -> Iterator[int]:
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), type("App", (ReleaseApp,), {"root": release_dir})
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def deploy(release_dir: Path, version: str) -> None:
    """Point ``current`` at ``version`` atomically, as a deploy script does."""
    temporary = release_dir / "current.deploy"
    temporary.symlink_to(release_dir / "releases" / version)
    os.replace(temporary, release_dir / "current")


def wait_for(
    what: str, condition: Callable[[], Any], daemon: DaemonProcess, timeout: float = 30
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with the daemon's log (at
    once if the daemon exited)."""

    def holds() -> Any:
        if daemon.process.poll() is not None:
            raise AssertionError(f"daemon exited: {daemon.log.read_text()[-4000:]}")
        return condition()

    return support_wait_for(
        what, holds, timeout=timeout, interval=0.2, context=lambda: daemon.log.read_text()[-4000:]
    )


def gate(daemon: DaemonProcess, target: str, name: str) -> dict[str, Any]:
    status = daemon.target(target)
    return next(g for g in status["gates"] if g["gate"] == name)


def check(daemon: DaemonProcess, target: str, name: str) -> dict[str, Any]:
    status = daemon.target(target)
    return next(c for c in status["checks"] if c["name"] == name)


def audit_kinds(daemon: DaemonProcess) -> list[str]:
    return [e["kind"] for e in daemon.get("/api/v1/events?limit=500").json()["events"]]


class ReadOnlyMount:
    """``mount --bind D D; mount -o remount,ro,bind D`` while in use; ``umount D`` to undo."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.mounted = False

    def remount_read_only(self) -> None:
        self._run("mount", "--bind", str(self.directory), str(self.directory))
        self.mounted = True
        self._run("mount", "-o", "remount,ro,bind", str(self.directory))

    def undo(self) -> None:
        if self.mounted:
            self._run("umount", str(self.directory))
            self.mounted = False

    @staticmethod
    def _run(*argv: str) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Callable[[Path], ReadOnlyMount]]:
    """A factory of read-only bind mounts, all undone at teardown; needs root."""
    require(os.geteuid() == 0, "root (to bind-mount a directory read-only)")
    mounts: list[ReadOnlyMount] = []

    def make(directory: Path) -> ReadOnlyMount:
        mount = ReadOnlyMount(directory)
        mounts.append(mount)
        return mount

    yield make
    for mount in mounts:
        mount.undo()
