"""The demo's moving parts as real processes: the release directory, the app controller (the
restart command), and the guarantees that nothing outlives the demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.waiting import wait_for
from watchdogd.config.loader import load_config_text
from watchdogd.demo import app_ctl, procs, release, scenario


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "app"
    release.create(directory, "errors", release.AppSettings(port=free_port(), owner_pid=None))
    yield directory
    app_ctl.stop(directory)


def version_served(root: Path) -> str:
    port = release.AppSettings.read(root).port
    return str(httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["version"])


class TestReleaseDirectory:
    def test_layout_and_switch(self, root: Path) -> None:
        """v1 is good, v2 has the fault, and a switch repoints `current` by a relative link."""
        assert release.current(root) == ("v1", None)
        release.switch(root, "v2")
        assert release.current(root) == ("v2", "errors")
        assert os.readlink(root / "current") == "releases/v2"
        assert [p.name for p in root.iterdir() if p.name.startswith(".current")] == []

    def test_unknown_fault_is_refused(self, tmp_path: Path) -> None:
        """A fault that does not exist is an error, not a good release in disguise."""
        with pytest.raises(ValueError, match="unknown fault"):
            release.create(tmp_path, "meteor", release.AppSettings(port=1))


class TestAppController:
    def test_start_restart_stop(self, root: Path) -> None:
        """start serves `current`; restart after a switch serves the new release; stop ends it."""
        ok, message = app_ctl.start(root)
        assert ok, message
        first = app_ctl.running_pid(root)
        assert first is not None
        assert version_served(root) == "v1"
        release.switch(root, "v2")
        ok, message = app_ctl.restart(root)
        assert ok, message
        assert not procs.alive(first)
        assert version_served(root) == "v2"
        second = app_ctl.running_pid(root)
        assert second is not None
        assert app_ctl.stop(root)
        assert not procs.alive(second)
        assert not (root / app_ctl.PID_FILE).exists()

    def test_restart_as_a_command_returns_while_the_app_runs(self, root: Path) -> None:
        """As the daemon runs it (output to a pipe, waiting for end of file), it returns 0."""
        result = subprocess.run(
            [sys.executable, "-m", "watchdogd.demo.app_ctl", "restart", str(root)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "v1 (fault: none)" in result.stdout
        assert version_served(root) == "v1"

    def test_downgrade_records_the_migration(self, root: Path) -> None:
        """downgrade appends the bad and the restored release to migrations.log."""
        env = {**os.environ, "WATCHDOGD_BAD_IMAGE": "v2", "WATCHDOGD_RESTORE_IMAGE": "v1"}
        result = subprocess.run(
            [sys.executable, "-m", "watchdogd.demo.app_ctl", "downgrade", str(root)],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=True,
        )
        assert result.stdout.strip() == "schema downgraded: v2 -> v1"
        assert "schema downgraded: v2 -> v1" in (root / "migrations.log").read_text()

    def test_app_stops_when_its_owner_dies(self, tmp_path: Path) -> None:
        """An app whose owning demo is gone (even by SIGKILL) stops by itself."""
        owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        directory = tmp_path / "app"
        settings = release.AppSettings(port=free_port(), owner_pid=owner.pid)
        release.create(directory, "errors", settings)
        try:
            ok, message = app_ctl.start(directory)
            assert ok, message
            pid = app_ctl.running_pid(directory)
            assert pid is not None
            owner.kill()
            owner.wait()
            wait_for("the app to end with its owner", lambda: not procs.alive(pid), timeout=10)
        finally:
            owner.kill()
            app_ctl.stop(directory)


class TestTiedProcess:
    def test_child_dies_with_its_parent(self, tmp_path: Path) -> None:
        """A process started through tied_to_this_process gets SIGTERM when its parent dies."""
        pid_file = tmp_path / "child.pid"
        parent_code = (
            "import subprocess, sys, time\n"
            "from watchdogd.demo import procs\n"
            "argv = [sys.executable, '-c', 'import time; time.sleep(60)']\n"
            "child = subprocess.Popen(procs.tied_to_this_process(argv))\n"
            f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
            "time.sleep(60)\n"
        )
        parent = subprocess.Popen([sys.executable, "-c", parent_code])
        try:
            wait_for("the pid file", lambda: pid_file.exists() and pid_file.read_text(), timeout=10)
            child = int(pid_file.read_text())
            wait_for("the child", lambda: procs.alive(child), timeout=10)
            parent.send_signal(signal.SIGKILL)
            parent.wait()
            wait_for("the child to end with its parent", lambda: not procs.alive(child), timeout=10)
        finally:
            parent.kill()
            parent.wait()
            if pid_file.exists() and pid_file.read_text():
                procs.terminate(int(pid_file.read_text()), timeout=1)


class TestDemoConfigs:
    @pytest.mark.parametrize("template", [scenario.RELEASE_DIR_TEMPLATE, scenario.DOCKER_TEMPLATE])
    def test_templates_render_to_valid_configs(self, template: str) -> None:
        """Both templates, filled in, pass the config loader; the seed gates are all there."""
        text = scenario.render(
            template,
            paths={
                "token_file": "/tmp/demo dir/token",
                "state_dir": "/tmp/demo dir/state",
                "root": "/tmp/demo dir/app",
                "python": sys.executable,
            },
            words={
                "listen": "127.0.0.1:9797",
                "app": "http://127.0.0.1:8000",
                "container": "watchdogd-demo-1",
                "docker_host": "unix:///var/run/docker.sock",
            },
        )
        config = load_config_text(text, template)
        gates = {gate.name: gate for gate in config.targets[0].gates}
        assert gates["traffic:latency_p95"].above == 2.0
        assert gates["traffic:error_rate"].above == 0.01
        assert gates["login:failure_rate"].above == 0.05
        expected = set().union(*scenario.EXPECTED_GATES[template].values())
        assert expected <= set(gates)

    def test_unsafe_words_are_refused(self) -> None:
        """A value that would change the YAML's structure is an error, not a broken config."""
        with pytest.raises(ValueError, match="unquoted"):
            scenario.render(
                scenario.DOCKER_TEMPLATE,
                paths={"token_file": "/t", "state_dir": "/s"},
                words={
                    "listen": "127.0.0.1:1",
                    "app": "http://x",
                    "container": "a, b",
                    "docker_host": "unix:///s",
                },
            )
