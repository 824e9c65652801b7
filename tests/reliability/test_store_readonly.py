"""``state_dir`` turns read-only under a running daemon (a bind mount remounted ro, as root).

An open SQLite connection keeps writing through the old mount, so only a probe of the
directory by path notices; the daemon probes at every release poll. What must hold: a loud
error (one log line) and ``watchdogd_store_writable 0``; the daemon keeps probing and serving;
no rollback starts while the playbook could not be journaled by a restarted daemon; and once
the directory is writable again, so is the store.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import ReadOnlyMount, audit_kinds, deploy, gate, wait_for
from tests.support.daemon import DaemonProcess, daemon_yaml, release_dir_target, start_daemon
from tests.support.ports import free_port
from watchdogd.errors import StoreError
from watchdogd.store import Store


def write_config(tmp_path: Path, port: int, app_port: int, release_dir: Path) -> Path:
    config = tmp_path / "watchdogd.yaml"
    config.write_text(
        daemon_yaml(port, tmp_path / "state")
        + "targets:\n"
        + release_dir_target(release_dir, app_port)
    )
    (tmp_path / "state").mkdir()
    return config


@pytest.fixture
def daemon(tmp_path: Path, app_port: int, release_dir: Path) -> Iterator[DaemonProcess]:
    port = free_port()
    process = start_daemon(write_config(tmp_path, port, app_port, release_dir), port, tmp_path)
    process.wait_ready()
    yield process
    process.stop()


def probes(daemon: DaemonProcess) -> float:
    return daemon.metric('watchdogd_probes_total{check="api",result="ok",target="app"}') or 0.0


class TestStateDirReadOnly:
    def test_read_only_state_dir_is_loud_and_blocks_rollback(
        self,
        daemon: DaemonProcess,
        tmp_path: Path,
        release_dir: Path,
        read_only_mount: Callable[[Path], ReadOnlyMount],
    ) -> None:
        """ro: metric 0, one error line, probes go on, a bad release is not rolled back."""
        daemon.wait_state("app", "healthy")
        assert daemon.metric("watchdogd_store_writable") == 1.0
        mount = read_only_mount(tmp_path / "state")
        mount.remount_read_only()
        remounted = time.monotonic()
        wait_for(
            "watchdogd_store_writable 0",
            lambda: daemon.metric("watchdogd_store_writable") == 0.0,
            daemon,
        )
        noticed = time.monotonic() - remounted
        log = daemon.log.read_text()
        assert log.count('"store_not_writable"') == 1, log[-3000:]
        assert "Read-only file system" in log
        assert daemon.get("/readyz").status_code == 503
        before = probes(daemon)
        wait_for("probes while read-only", lambda: probes(daemon) > before + 5, daemon)

        deploy(release_dir, "v2")
        wait_for(
            "the gate to breach",
            lambda: gate(daemon, "app", "api:error_rate")["verdict"] == "breached",
            daemon,
        )
        refusal = wait_for(
            "a refusal",
            lambda: [
                e
                for e in daemon.get("/api/v1/events?limit=100").json()["events"]
                if e["kind"] == "rollback_refused"
            ],
            daemon,
        )
        assert "state store cannot be written" in refusal[0]["message"]
        time.sleep(1.0)
        assert "incident_started" not in audit_kinds(daemon)
        assert os.readlink(release_dir / "current").endswith("v2")
        print(
            f"\nreliability figure: read-only state_dir noticed in {noticed:.1f} s "
            "(release poll every 300 ms here, 5 s by default)"
        )
        assert daemon.target("app")["state"] == "breached"
        assert daemon.metric("watchdogd_rollbacks_total") is None

        mount.undo()
        wait_for(
            "watchdogd_store_writable 1",
            lambda: daemon.metric("watchdogd_store_writable") == 1.0,
            daemon,
        )
        assert '"store_writable_again"' in daemon.log.read_text()
        reply = daemon.post("/api/v1/targets/app/rollback", {"reason": "store is back"})
        assert reply.status_code == 202, reply.text
        daemon.wait_state("app", "rolled_back")
        assert os.readlink(release_dir / "current").endswith("v1")


class TestStoreDirectoryProbe:
    def test_check_writable_sees_a_read_only_directory(
        self, tmp_path: Path, read_only_mount: Callable[[Path], ReadOnlyMount]
    ) -> None:
        """An open store still commits through the old mount; check_writable says False."""
        (tmp_path / "state").mkdir()
        errors: list[StoreError] = []
        with Store.in_state_dir(tmp_path / "state", on_error=errors.append) as store:
            assert store.check_writable()
            mount = read_only_mount(tmp_path / "state")
            mount.remount_read_only()
            store.audit("note", "still lands through the open file")
            assert not store.check_writable()
            assert not store.writable
            assert "Read-only file system" in str(errors[-1])
            mount.undo()
            assert store.check_writable()
            assert store.writable
