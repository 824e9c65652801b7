"""config/swarm-stack.yml: what it promises, and that a real swarm deploys it as promised (with
a stand-in image: building watchdogd's image is the sidecar test's job)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from docker.errors import APIError, NotFound

from tests.support import require, unique_name
from tests.support.images import AppImages
from watchdogd.config.loader import load_config

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "config" / "swarm-stack.yml"
ENV = {"WATCHDOGD_TOKEN": "stack-test-token", "DOCKER_GID": "0"}


def stack() -> dict[str, Any]:
    return dict(yaml.safe_load(STACK.read_text()))


class TestStackFile:
    def test_one_replica_on_a_manager_with_the_socket(self) -> None:
        """One replica, placed on managers, the socket and a state volume mounted, and time
        to finish a playbook step on SIGTERM."""
        service = stack()["services"]["watchdogd"]
        deploy = service["deploy"]
        assert (deploy["mode"], deploy["replicas"]) == ("replicated", 1)
        assert deploy["placement"]["constraints"] == ["node.role == manager"]
        mounts = {m["target"]: m for m in service["volumes"]}
        assert mounts["/var/run/docker.sock"]["source"] == "/var/run/docker.sock"
        assert mounts["/var/lib/watchdogd"]["type"] == "volume"
        assert deploy["update_config"]["order"] == "stop-first"
        assert service["stop_grace_period"] == "40s"

    def test_the_daemon_config_it_ships_is_valid(self) -> None:
        """The config the stack mounts passes check-config and watches a swarm service."""
        source = STACK.parent / stack()["configs"]["watchdogd-config"]["file"]
        config = load_config(source, environ=ENV)
        assert config.listen_host == "0.0.0.0"  # noqa: S104 - on the node, for its API
        assert [t.swarm.service for t in config.targets if t.swarm] == ["api"]
        assert config.server.shutdown_timeout < 40


@pytest.mark.docker
@pytest.mark.swarm
class TestStackDeploy:
    def test_swarm_runs_it_on_a_manager_with_socket_and_config(
        self, swarm: Any, app_images: AppImages, tmp_path: Path
    ) -> None:
        """``docker stack deploy`` accepts the file; its one task runs on a manager, on the
        host network, with the socket and the config mounted."""
        docker = shutil.which("docker")
        require(docker, "the docker CLI")
        assert docker is not None
        definition = stack()
        service = definition["services"]["watchdogd"]
        service["image"] = app_images.v1
        # The stand-in sleeps: no app, so no healthcheck, and sleep as PID 1 ignores SIGTERM.
        service["entrypoint"], service["command"] = ["sleep"], ["600"]
        service["healthcheck"] = {"disable": True}
        service["stop_grace_period"] = "1s"
        config = definition["configs"]["watchdogd-config"]
        config["file"] = str(STACK.parent / config["file"])
        (tmp_path / "stack.yml").write_text(yaml.safe_dump(definition))
        name = unique_name("wdt-stack")
        run = [docker, "stack", "deploy", "-c", str(tmp_path / "stack.yml"), name]
        try:
            subprocess.run(run, env={"PATH": "/usr/bin:/bin", **ENV}, check=True, timeout=60)
            task = self.running_task(swarm, f"{name}_watchdogd")
            node = swarm.api.inspect_node(task["NodeID"])
            assert node["Spec"]["Role"] == "manager"
            container = swarm.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
            assert container.attrs["HostConfig"]["NetworkMode"] == "host"
            socket = container.exec_run(["test", "-S", "/var/run/docker.sock"])
            assert socket.exit_code == 0
            mounted = container.exec_run(["cat", "/etc/watchdogd/watchdogd.yaml"]).output
            assert mounted.decode() == (STACK.parent / "examples/swarm-service.yaml").read_text()
        finally:
            subprocess.run([docker, "stack", "rm", name], check=False, timeout=60)
            self.remove_volume(swarm, f"{name}_watchdogd-state")

    @staticmethod
    def running_task(client: Any, service: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            tasks = client.api.tasks(filters={"service": service, "desired-state": "running"})
            running = [t for t in tasks if t["Status"]["State"] == "running"]
            if running:
                return dict(running[0])
            assert time.monotonic() < deadline, tasks
            time.sleep(0.2)

    @staticmethod
    def remove_volume(client: Any, volume: str, timeout: float = 60.0) -> None:
        """The volume is free once the task's container is gone."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client.api.remove_volume(volume)
            except NotFound:
                return
            except APIError:
                time.sleep(0.5)  # still in use by the stopping container
            else:
                return
        with contextlib.suppress(NotFound, APIError):
            client.api.remove_volume(volume, force=True)
