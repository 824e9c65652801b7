"""The daemon as a real process against a replicated Swarm service: a bad release is rolled
back on every replica; two instances roll back once; a killed instance's incident is resumed
by a new one that has nothing but the state kept in Swarm."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DaemonProcess, daemon_yaml, start_daemon
from tests.support.images import AppImages
from tests.support.ports import free_port
from tests.swarm.conftest import Services

pytestmark = [pytest.mark.docker, pytest.mark.swarm, pytest.mark.slow]

StartDaemon = Callable[[str, str], DaemonProcess]


def config_text(service: str, port: int, state: Path) -> str:
    # The bake outlasts a rollout here: bake_time counts from the moment the new spec is seen,
    # and a bad release's tasks need a few seconds to start and fail their healthcheck.
    head = daemon_yaml(
        port,
        state,
        docker="poll_interval: 500ms",
        defaults="window: 1m, bake_time: 10s, cooldown: 1m",
    )
    return f"""\
{head}targets:
  - name: web
    swarm: {{service: {service}}}
    checks:
      - {{name: tasks, type: container_health, interval: 500ms}}
    gates:
      - {{check: tasks, metric: unhealthy}}
    playbook:
      - rollback: {{}}
      - wait_healthy: {{timeout: 30s}}
"""


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartDaemon]:
    """``start(service, name)``: a daemon watching ``service``, in its own directory and with
    its own state_dir; every one is killed at teardown."""
    started: list[DaemonProcess] = []

    def run(service: str, name: str) -> DaemonProcess:
        home = tmp_path / name
        home.mkdir()
        port = free_port()
        config = home / "watchdogd.yaml"
        config.write_text(config_text(service, port, home / "state"))
        daemon = start_daemon(config, port, home)
        started.append(daemon)
        daemon.wait_ready(timeout=40)
        return daemon

    yield run
    for daemon in started:
        if daemon.process.poll() is None:
            os.killpg(daemon.process.pid, signal.SIGKILL)
            daemon.process.wait()


def events(daemon: DaemonProcess, kind: str) -> list[dict[str, Any]]:
    found = daemon.get("/api/v1/events?limit=500").json()["events"]
    return [e for e in reversed(found) if e["kind"] == kind]


def rollbacks(daemon: DaemonProcess) -> float:
    line = 'watchdogd_rollbacks_total{result="succeeded",target="web",trigger="gate"}'
    return daemon.metric(line) or 0.0


def image_of(spec: dict[str, Any]) -> str:
    return str(spec["TaskTemplate"]["ContainerSpec"]["Image"])


def deploy_v1(services: Services, app_images: AppImages) -> str:
    name = services.create(app_images.v1)
    services.wait_running(name, app_images.v1)
    return name


class TestRollbackOfAService:
    def test_every_replica_serves_v1_within_30_s_of_the_breach(
        self, services: Services, app_images: AppImages, start: StartDaemon
    ) -> None:
        """v1 bakes; v2 fails its healthcheck on every replica; watchdogd rolls the service
        back with Swarm's own rollback, and every task serves v1 again."""
        name = deploy_v1(services, app_images)
        daemon = start(name, "a")
        daemon.wait_state("web", "healthy")
        services.update(name, app_images.v2)

        status = daemon.wait_state("web", "rolled_back", timeout=90)

        assert services.versions(name) == ["v1", "v1", "v1"]
        service = services.inspect(name)
        assert service["UpdateStatus"]["State"] == "rollback_completed"
        assert image_of(service["PreviousSpec"]) == app_images.v2
        [finished] = events(daemon, "incident_finished")
        assert finished["data"]["state"] == "succeeded"
        # The incident opens at the breach and ends when every replica is healthy again: a
        # figure to report (bench_mttr measures it), not to assert.
        assert finished["data"]["duration_seconds"] > 0
        print(f"\nincident took {finished['data']['duration_seconds']:.1f} s")
        assert [q["image"] for q in status["quarantined"]] == [app_images.ids["v2"]]
        kept = services.state(name)
        assert kept["known_good"][0]["release"]["image"] == app_images.ids["v1"]
        assert [q["image"] for q in kept["quarantine"]] == [app_images.ids["v2"]]
        assert [h["state"] for h in kept["history"]] == ["succeeded"]


class TestTwoInstances:
    def test_two_daemons_roll_back_once(
        self, services: Services, app_images: AppImages, start: StartDaemon
    ) -> None:
        """Both see the breach; the claim in Swarm lets one roll back, the other stands down."""
        name = deploy_v1(services, app_images)
        daemons = [start(name, "a"), start(name, "b")]
        for daemon in daemons:
            daemon.wait_state("web", "healthy")
        services.update(name, app_images.v2)

        deadline = time.monotonic() + 90
        while not services.state(name).get("history"):
            assert time.monotonic() < deadline, [d.target("web") for d in daemons]
            time.sleep(0.3)
        services.wait_running(name, app_images.v1)
        for daemon in daemons:  # the loser has seen v1 come back by now
            deadline = time.monotonic() + 30
            while daemon.target("web")["state"] not in ("healthy", "rolled_back"):
                assert time.monotonic() < deadline, daemon.target("web")
                time.sleep(0.2)

        assert sorted(rollbacks(d) for d in daemons) == [0.0, 1.0]
        assert len(services.state(name)["history"]) == 1
        service = services.inspect(name)
        assert image_of(service["Spec"]) == app_images.v1
        assert image_of(service["PreviousSpec"]) == app_images.v2  # flipped once, not twice
        assert services.versions(name) == ["v1", "v1", "v1"]


class TestKilledMidRollback:
    def test_a_new_instance_resumes_from_the_state_in_swarm(
        self, services: Services, app_images: AppImages, start: StartDaemon
    ) -> None:
        """SIGKILL while Swarm rolls back; a new daemon with an empty state_dir takes the
        incident over after the lease, resumes it, and rolls back no second time."""
        name = deploy_v1(services, app_images)
        first = start(name, "first")
        first.wait_state("web", "healthy")
        services.update(name, app_images.v2)
        deadline = time.monotonic() + 60
        while (services.inspect(name).get("UpdateStatus") or {}).get("State") != (
            "rollback_started"
        ):
            assert time.monotonic() < deadline, first.target("web")
            time.sleep(0.05)
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait()
        incident = services.state(name)["incident"]
        assert incident is not None
        assert [e["action"] for e in incident["journal"]] == ["rollback"]

        second = start(name, "second")  # a new state_dir: only Swarm knows the incident
        status = second.wait_state("web", "rolled_back", timeout=60)

        [resumed] = events(second, "incident_resumed")
        assert resumed["incident_id"] == incident["id"]
        [finished] = events(second, "incident_finished")
        assert finished["data"]["state"] == "succeeded"
        assert status["current_release"]["image"] == app_images.ids["v1"]
        assert [q["image"] for q in status["quarantined"]] == [app_images.ids["v2"]]
        kept = services.state(name)
        assert [(h["id"], h["state"]) for h in kept["history"]] == [(incident["id"], "succeeded")]
        assert kept["history"][0]["owner"] != incident["owner"]
        service = services.inspect(name)
        assert image_of(service["Spec"]) == app_images.v1
        assert image_of(service["PreviousSpec"]) == app_images.v2
        assert services.versions(name) == ["v1", "v1", "v1"]
