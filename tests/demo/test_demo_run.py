"""`watchdogd demo` end to end, as a newcomer runs it but without a terminal: one run per fault
against the release directory (no Docker), and one with --docker. Each run must end in a
rollback, say so in its summary, keep its audit log, and leave no process or container behind.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import docker_labels, require
from watchdogd.demo import procs, scenario
from watchdogd.demo.docker_stage import LABEL, static_busybox

# Generous: a loaded CI machine is slower than a laptop, and the test must not flake on it.
# The demo's own deadlines end a run that stalls long before this.
RUN_TIMEOUT = 150


@dataclass
class DemoRun:
    code: int
    stdout: str
    stderr: str
    directory: Path

    def audit(self) -> list[dict[str, Any]]:
        lines = (self.directory / "audit.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def event(self, kind: str) -> dict[str, Any]:
        return next(e for e in self.audit() if e["kind"] == kind)

    def pids(self) -> list[int]:
        """Every process the run started: watchdogd and each app process."""
        found = [int(p) for p in re.findall(r"watchdogd: running \(pid (\d+)\)", self.stdout)]
        app_log = self.directory / "app" / "app.log"
        if app_log.exists():
            found += [int(p) for p in re.findall(r", pid (\d+)$", app_log.read_text(), re.M)]
        return found

    def explain(self) -> str:
        log = self.directory / "watchdogd.log"
        tail = log.read_text()[-3000:] if log.exists() else ""
        return f"exit {self.code}\n{self.stdout}\n{self.stderr}\n--- watchdogd.log\n{tail}"


def run_demo(directory: Path, *args: str) -> DemoRun:
    # stdout is a pipe, not a terminal: the demo must fall back to plain lines by itself.
    result = subprocess.run(
        [sys.executable, "-m", "watchdogd", "demo", "--dir", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    return DemoRun(result.returncode, result.stdout, result.stderr, directory)


def port_closed(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


def assert_rolled_back(run: DemoRun, template: str, fault: str) -> None:
    assert run.code == 0, run.explain()
    assert "watchdogd rolled the bad release back." in run.stdout, run.explain()
    assert "\x1b[" not in run.stdout  # plain lines, no live view, off a terminal
    started = run.event("incident_started")
    gate = started["data"]["trigger_name"]
    assert gate in scenario.EXPECTED_GATES[template][fault], run.explain()
    assert f"by gate {gate}:" in run.stdout
    assert run.event("incident_finished")["data"]["state"] == "succeeded"
    assert run.event("quarantined")["target"] == "app"
    assert "detected " in run.stdout
    assert "restored " in run.stdout
    assert f"audit log    {run.directory / 'state' / 'watchdogd.db'}" in run.stdout
    assert (run.directory / "state" / "watchdogd.db").exists()


@pytest.mark.slow
class TestDemoWithoutDocker:
    @pytest.mark.parametrize("fault", ["errors", "latency", "auth", "crash"])
    def test_fault_is_detected_and_rolled_back(self, tmp_path: Path, fault: str) -> None:
        """Each fault breaches its gate, v1 is restored, and nothing is left running."""
        run = run_demo(tmp_path / "demo", "--fault", fault)
        assert_rolled_back(run, scenario.RELEASE_DIR_TEMPLATE, fault)
        assert os.readlink(tmp_path / "demo" / "app" / "current") == "releases/v1"
        migrations = (tmp_path / "demo" / "app" / "migrations.log").read_text()
        assert "schema downgraded: v2 -> v1" in migrations  # the playbook's first step ran
        pids = run.pids()
        assert len(pids) >= 4, run.explain()  # watchdogd, v1, v2, v1 again
        assert [pid for pid in pids if procs.alive(pid)] == []
        url = re.search(r"requests a second to (http://[0-9.:]+)/", run.stdout)
        assert url is not None
        assert port_closed(url.group(1))


@pytest.mark.slow
class TestDemoOnATerminal:
    def test_live_view_redraws_in_place(self, tmp_path: Path) -> None:
        """On a terminal the demo redraws one block (cursor up, clear) and ends with the
        summary below the last picture."""
        main, child = pty.openpty()
        env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "50"}
        argv = [sys.executable, "-m", "watchdogd", "demo", "--fault", "crash"]
        process = subprocess.Popen(
            [*argv, "--dir", str(tmp_path / "demo")],
            stdin=child,
            stdout=child,
            stderr=child,
            env=env,
        )
        os.close(child)
        output = bytearray()
        deadline = time.monotonic() + RUN_TIMEOUT
        try:
            while time.monotonic() < deadline:
                readable, _, _ = select.select([main], [], [], 1.0)
                if not readable:
                    continue
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # EIO: the demo exited and closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
        finally:
            os.close(main)
            if process.poll() is None and time.monotonic() >= deadline:
                process.kill()
        code = process.wait(timeout=30)
        text = output.decode(errors="replace")
        assert code == 0, text[-3000:]
        redraws = re.findall(r"\x1b\[\d+F\x1b\[J", text)
        assert len(redraws) > 5, text[-3000:]
        last_picture = text.rsplit("\x1b[J", 1)[1]
        assert "target app: ROLLED_BACK" in last_picture
        assert "incident:" in last_picture
        assert "watchdogd rolled the bad release back." in last_picture
        assert "[  0.0s]" not in text  # no plain lines on a terminal


class TestDemoCommandLine:
    def test_unknown_fault_is_a_usage_error(self, tmp_path: Path) -> None:
        """An unknown fault exits 2 before anything starts."""
        run = run_demo(tmp_path / "demo", "--fault", "meteor")
        assert run.code == 2
        assert "invalid choice" in run.stderr
        assert not (tmp_path / "demo").exists()

    def test_a_used_directory_is_refused(self, tmp_path: Path) -> None:
        """--dir must be empty: a previous run's store would change the story."""
        (tmp_path / "demo").mkdir()
        (tmp_path / "demo" / "watchdogd.yaml").write_text("listen: 127.0.0.1:1\n")
        run = run_demo(tmp_path / "demo")
        assert run.code == 2
        assert "is not empty" in run.stderr

    def test_docker_without_an_engine_says_so(self, tmp_path: Path) -> None:
        """--docker with no engine at DOCKER_HOST exits 3 with a message saying what to do."""
        require(static_busybox() is not None, "a static busybox (Debian busybox-static)")
        env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
        result = subprocess.run(
            [sys.executable, "-m", "watchdogd", "demo", "--docker", "--dir", str(tmp_path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 3, result.stdout + result.stderr
        assert "needs a Docker engine" in result.stderr
        assert "without --docker" in result.stderr


@pytest.mark.slow
@pytest.mark.docker
class TestDemoWithDocker:
    def test_default_fault_with_containers(self, tmp_path: Path, docker_engine: Any) -> None:
        """--docker: the container is recreated from v1, and no demo container or image stays."""
        require(static_busybox() is not None, "a static busybox (Debian busybox-static)")
        labels = [f"--label={key}={value}" for key, value in docker_labels().items()]
        run = run_demo(tmp_path / "demo", "--docker", *labels)
        assert_rolled_back(run, scenario.DOCKER_TEMPLATE, "errors")
        assert re.search(r"now +watchdogd-demo-\w+ runs watchdogd-demo/app:\w+-v1", run.stdout)
        leftovers = docker_engine.containers.list(all=True, filters={"label": LABEL})
        assert [c.name for c in leftovers if c.labels.get(LABEL) in run.stdout] == []
        images = docker_engine.images.list(filters={"label": LABEL})
        assert [i.tags for i in images if any(t in run.stdout for t in i.tags)] == []
