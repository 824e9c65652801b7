"""The Docker engine stops for 30 s and starts again while watchdogd watches healthy targets.

This stops the one shared engine (``/var/run/docker.pid``) and starts it again exactly as
``.ci/run`` does (``. .ci/services.sh; ci_start_dockerd``), so it runs only under the
``docker`` marker, and every other Docker test of a concurrent session on this engine fails
meanwhile: run it alone while developing. The watched containers have ``--restart always``,
so the engine brings them back when it starts.

What must hold: no rollback, and no incident at all; while the engine is away, each target's
container-health check reports its source down and its gate ``unknown`` (never breached); once
the engine is back, both are healthy again; and nothing in the store is lost (every audit event
from before is still there, the releases and known-good releases are unchanged).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import APIError

from tests.reliability.conftest import check, gate, wait_for
from tests.support import require
from tests.support.daemon import TOKEN, DaemonProcess, start_daemon
from tests.support.images import AppImages, run_app, wait_health
from tests.support.ports import free_port
from watchdogd.store import Store

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PIDFILE = Path("/var/run/docker.pid")
OUTAGE = 30.0
BAD_STATES = {"breached", "rolling_back", "rolled_back", "failed", "frozen"}


def dockerd_pid() -> int | None:
    """The local engine's pid, if the pid file names a running dockerd."""
    try:
        pid = int(PIDFILE.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "dockerd" else None


def stop_dockerd(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "dockerd did not stop within 60 s"
        time.sleep(0.2)


def start_dockerd() -> None:
    """As .ci/run does; then put docker0 back should the engine not have."""
    result = subprocess.run(
        ["bash", "-c", ". .ci/services.sh; ci_start_dockerd"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"ci_start_dockerd failed: {result.stdout}{result.stderr}"
    shown = subprocess.run(["ip", "link", "show", "docker0"], capture_output=True, check=False)
    if shown.returncode:
        for command in (
            "ip link add docker0 type bridge",
            "ip addr add 172.17.0.1/16 dev docker0",
            "ip link set docker0 up",
        ):
            subprocess.run(command.split(), check=False)


@pytest.fixture
def engine_pid(docker_engine: Any) -> int:
    require(os.geteuid() == 0, "root (to stop and start the Docker engine)")
    require(not os.environ.get("DOCKER_HOST"), "a local engine (DOCKER_HOST is set)")
    pid = dockerd_pid()
    require(pid, f"a local dockerd with its pid in {PIDFILE}")
    assert pid is not None
    return pid


@pytest.fixture
def containers(docker_engine: Any, app_images: AppImages) -> Iterator[list[str]]:
    names: list[str] = []
    try:
        for _ in range(2):
            app = run_app(docker_engine, app_images.v1, restart_policy={"Name": "always"})
            names.append(app.container.name)
            wait_health(app.container)
        yield names
    finally:
        # A fresh client: the session's may hold connections to the engine that stopped.
        client = docker.from_env(timeout=60)
        for name in names:
            with contextlib.suppress(APIError):
                client.containers.get(name).remove(force=True)
        client.close()


@pytest.fixture
def daemon(tmp_path: Path, containers: list[str]) -> Iterator[DaemonProcess]:
    port = free_port()
    targets = "".join(
        f"""
  - name: app{index}
    container: {name}
    checks:
      - {{name: health, type: container_health}}
    gates:
      - {{check: health, metric: unhealthy}}"""
        for index, name in enumerate(containers)
    )
    config = tmp_path / "watchdogd.yaml"
    config.write_text(
        f"""\
listen: 127.0.0.1:{port}
api_token: {TOKEN}
state_dir: {tmp_path / "state"}
log: {{format: json, level: info}}
docker: {{poll_interval: 1s, timeout: 5s}}
defaults: {{bake_time: 2s}}
targets:{targets}
"""
    )
    process = start_daemon(config, port, tmp_path)
    process.wait_ready()
    yield process
    process.stop()


def releases(state_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """Each target's releases and their states, straight from the store file."""
    with Store.in_state_dir(state_dir, read_only=True) as store:
        return {
            target: [(r.release.id, str(r.state)) for r in store.releases(target)]
            for target in ("app0", "app1")
        }


class TestEngineOutage:
    def test_engine_away_for_30_seconds_changes_nothing(
        self, daemon: DaemonProcess, containers: list[str], engine_pid: int, tmp_path: Path
    ) -> None:
        """Unknown while the engine is away, healthy after; no rollback; the store intact."""
        targets = [f"app{i}" for i in range(len(containers))]
        for name in targets:
            daemon.wait_state(name, "healthy")
        before = daemon.get("/api/v1/events?limit=500").json()["events"]
        known = releases(tmp_path / "state")
        assert all(r == [(r[0][0], "known_good")] for r in known.values()), known

        stop_dockerd(engine_pid)
        stopped = time.monotonic()
        seen: set[str] = set()
        try:
            for name in targets:
                wait_for(
                    f"{name}'s source to go down",
                    lambda n=name: not check(daemon, n, "health")["source_up"],  # type: ignore[misc]
                    daemon,
                )
                assert gate(daemon, name, "health:unhealthy")["verdict"] == "unknown"
            unknown_after = time.monotonic() - stopped
            while time.monotonic() - stopped < OUTAGE:
                seen |= {daemon.target(name)["state"] for name in targets}
                for name in targets:
                    assert gate(daemon, name, "health:unhealthy")["verdict"] == "unknown"
                time.sleep(0.5)
            assert daemon.metric('watchdogd_gate_unknown{gate="health:unhealthy",target="app0"}')
        finally:
            start_dockerd()
        started = time.monotonic()

        client = docker.from_env(timeout=60)
        try:
            for name in containers:
                wait_health(client.containers.get(name), timeout=60)
        finally:
            client.close()
        for name in targets:
            wait_for(
                f"{name}'s source to come back",
                lambda n=name: check(daemon, n, "health")["source_up"],  # type: ignore[misc]
                daemon,
                timeout=60,
            )
            wait_for(
                f"{name}'s gate to pass",
                lambda n=name: gate(daemon, n, "health:unhealthy")["verdict"] == "ok",  # type: ignore[misc]
                daemon,
                timeout=60,
            )
            seen.add(daemon.target(name)["state"])
            daemon.wait_state(name, "healthy")

        # Figures for BENCHMARKS.md (pytest -s shows them); not asserted.
        print(
            f"\nreliability figure: engine outage: unknown {unknown_after:.1f} s after the stop; "
            f"healthy again {time.monotonic() - started:.1f} s after the engine started"
        )
        assert not seen & BAD_STATES, seen
        assert daemon.metric("watchdogd_rollbacks_total") is None
        after = daemon.get("/api/v1/events?limit=500").json()["events"]
        kinds = {e["kind"] for e in after}
        assert not kinds & {"incident_started", "rollback_refused", "frozen"}, kinds
        assert {(e["id"], e["kind"]) for e in before} <= {(e["id"], e["kind"]) for e in after}
        assert releases(tmp_path / "state") == known
