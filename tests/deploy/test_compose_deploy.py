"""``watchdogd deploy`` of a Compose service: the real ``docker-compose`` 1.29 (Debian's), real
HAProxy, the real engine, the daemon, and users under load through HAProxy.

The service ``web`` is brought up by ``docker-compose up -d`` (one replica, its port published
on 127.0.0.1); HAProxy's static server ``blue`` points at it; the daemon's target is
``compose: {project, service}`` with a ``traffic:`` section. Green is started from the
replica's whole configuration, Compose labels included, so that once promoted Compose sees its
service's one replica again; before that green is no replica (the target's release stays
blue's). Times are reported, never asserted.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, NotFound

from tests.deploy.conftest import TARGET, LoadClient, Stage
from tests.e2e.conftest import Daemons, events, wait_event
from tests.support import SESSION_ID, SESSION_LABEL, TEST_LABEL, require, unique_name
from tests.support.haproxy import HAProxyFactory, StaticServer
from tests.support.images import AppImages, set_mode, wait_http
from tests.support.ports import free_port

pytestmark = [pytest.mark.docker, pytest.mark.haproxy, pytest.mark.slow]

SERVICE = "web"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"


@dataclass
class ComposeStage(Stage):
    """The deploy tests' stage with blue as the one replica of a Compose service."""

    project: str = ""
    binary: str = ""

    @property
    def file(self) -> Path:
        return self.tmp / "compose" / "docker-compose.yml"

    def compose_file(self, image: str, port: int | None = None) -> None:
        self.file.parent.mkdir(exist_ok=True)
        self.file.write_text(f"""\
version: "2.4"
services:
  {SERVICE}:
    image: {image}
    ports: ["127.0.0.1:{port or self.blue_port}:8080"]
    labels: {{{TEST_LABEL}: "1", {SESSION_LABEL}: "{SESSION_ID}"}}
""")

    def compose(self, *args: str) -> str:
        result = subprocess.run(
            [self.binary, "-p", self.project, "-f", str(self.file), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 0, f"docker-compose {' '.join(args)}: {result.stderr}"
        return result.stdout

    def config(self, **kwargs: Any) -> Path:
        path = super().config(**kwargs)
        target = f"compose: {{project: {self.project}, service: {SERVICE}}}"
        path.write_text(path.read_text().replace(f"container: {self.blue}", target))
        return path

    def compose_ps(self) -> list[str]:
        """The containers ``docker-compose ps`` lists for the service, by name."""
        ids = self.compose("ps", "-q", SERVICE).split()
        return sorted(self.docker.containers.get(i).name for i in ids)

    def releases(self) -> list[dict[str, Any]]:
        """The target's release history as the store keeps it (newest first)."""
        with sqlite3.connect(self.tmp / "state" / "watchdogd.db") as db:
            rows = db.execute(
                "SELECT release_id, image_ref, state, spec_json FROM releases "
                "WHERE target = ? ORDER BY last_seen DESC",
                (TARGET,),
            ).fetchall()
        return [
            {"id": r[0], "image_ref": r[1], "state": r[2], "spec": json.loads(r[3])} for r in rows
        ]

    def cleanup(self) -> None:
        subprocess.run(
            [self.binary, "-p", self.project, "-f", str(self.file), "down"],
            capture_output=True,
            check=False,
            timeout=120,
        )
        super().cleanup()
        # `down` cannot remove the project's network while a green (not a replica for
        # Compose) is still attached to it; the containers are all gone now.
        project = {"label": f"{PROJECT_LABEL}={self.project}"}
        for network in self.docker.networks.list(filters=project):
            with contextlib.suppress(NotFound, APIError):
                network.remove()


@pytest.fixture
def compose_stage(
    docker_engine: Any,
    app_images: AppImages,
    haproxy_factory: HAProxyFactory,
    daemons: Daemons,
    tmp_path: Path,
) -> Iterator[ComposeStage]:
    binary = shutil.which("docker-compose")
    require(binary, "docker-compose (Debian package docker-compose)")
    assert binary is not None
    project = unique_name("wdtbg").replace("-", "")
    port = free_port()
    proxy = haproxy_factory([StaticServer("blue", port)])
    built = ComposeStage(
        docker_engine,
        app_images,
        f"{project}_{SERVICE}_1",  # Compose 1.29's name for the first replica
        port,
        proxy,
        daemons,
        tmp_path,
        project=project,
        binary=binary,
    )
    try:
        built.compose_file(app_images.v1)
        built.compose("up", "-d")
        wait_http(f"http://127.0.0.1:{port}/cgi-bin/version", 30)
        yield built
    finally:
        built.cleanup()


def load(stage: Stage, clients: list[LoadClient]) -> LoadClient:
    client = LoadClient(stage.frontend).start()
    clients.append(client)
    wait_http(stage.frontend, 10)
    time.sleep(1.0)  # some traffic on blue before the deploy
    return client


def assert_one_replica(stage: ComposeStage, image: str) -> Any:
    """Compose sees its service's one replica, under blue's name, running ``image``."""
    assert stage.app_containers() == [stage.blue]
    assert stage.compose_ps() == [stage.blue]
    running = stage.docker.containers.get(stage.blue)
    assert running.attrs["Config"]["Image"] == image
    labels = running.attrs["Config"]["Labels"]
    assert labels[PROJECT_LABEL] == stage.project
    assert labels[SERVICE_LABEL] == SERVICE
    assert labels[NUMBER_LABEL] == "1"
    return running


class TestComposeDeploy:
    def test_a_good_release_is_promoted_and_compose_sees_it(
        self, compose_stage: ComposeStage, load_clients: list[LoadClient]
    ) -> None:
        stage = compose_stage
        release = stage.derived_image("v5")
        daemon = stage.start_daemon(stage.config(bake_time="3s"))
        blue_release = daemon.target(TARGET)["current_release"]
        users = load(stage, load_clients)

        result = stage.deploy(release)
        time.sleep(1.0)
        users.stop()

        assert result.returncode == 0, result.stdout + result.stderr
        for step in ("started from blue's configuration", "pre-checks passed", "promoted"):
            assert step in result.stdout, result.stdout
        assert users.failed() == []
        assert users.responses[-1].version == "v5"
        assert_one_replica(stage, release)
        serving = {n for n, row in stage.servers().items() if row["status"] != "MAINT"}
        assert len(serving) == 1
        assert serving != {"blue"}
        status = daemon.target(TARGET)
        assert status["current_release"]["image_ref"] == release
        # Green was never a replica before the switch, and promoted under blue's name it is
        # the release users were switched to: the target saw no third release. (Blue may come
        # back once for a moment: the controller's poll that read blue just before the switch
        # can land after the deploy's own observation: the controller does not order them.)
        seen = [e["data"]["release"] for e in events(daemon, "new_release")]
        assert seen[0] == status["current_release"]["id"], seen
        assert set(seen) <= {status["current_release"]["id"], blue_release["id"]}, seen
        # Blue's release is kept in the history; the promoted one is known-good and recorded
        # as a Compose release whose replica has blue's name.
        history = {r["id"]: r for r in stage.releases()}
        assert blue_release["id"] in history
        promoted = history[status["current_release"]["id"]]
        assert promoted["state"] == "known_good"
        replicas = promoted["spec"]["replicas"]
        assert [r["Name"].lstrip("/") for r in replicas] == [stage.blue]

    def test_a_compose_up_after_a_promotion_is_rolled_back_to_the_promoted_release(
        self, compose_stage: ComposeStage, load_clients: list[LoadClient]
    ) -> None:
        """The promoted release, recorded as the service's, is re-created like any Compose
        release when somebody else's ``docker-compose up`` brings a bad one."""
        stage = compose_stage
        release = stage.derived_image("v8")
        daemon = stage.start_daemon(stage.config(bake_time="3s"))
        assert stage.deploy(release).returncode == 0
        daemon.wait_state(TARGET, "healthy", timeout=60)
        users = load(stage, load_clients)

        # The promoted replica publishes the port the engine chose for green, where HAProxy
        # sends; the compose file pins it, so that users meet the bad release (HAProxy does
        # not follow a container that somebody else re-created elsewhere).
        promoted = stage.docker.containers.get(stage.blue)
        port = int(promoted.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
        stage.compose_file(stage.images.v2, port)  # answers 500 everywhere
        stage.compose("up", "-d")
        finished = wait_event(daemon, "incident_finished", timeout=90)
        time.sleep(1.0)
        users.stop()

        assert finished["data"]["state"] == "succeeded", finished
        assert [r for r in users.served_by("v2") if r.status == 500], "v2 never met users"
        assert users.responses[-1].version == "v8"
        assert users.responses[-1].status == 200
        assert_one_replica(stage, release)

    def test_a_release_failing_on_real_traffic_is_switched_back(
        self, compose_stage: ComposeStage, load_clients: list[LoadClient]
    ) -> None:
        stage = compose_stage
        release = stage.derived_image("v4")
        daemon = stage.start_daemon(stage.config(bake_time="60s"))
        users = load(stage, load_clients)

        stage.deploy(release, detach=True)
        stage.wait_stage("baking")
        time.sleep(1.0)  # users on green, all fine
        assert users.served_by("v4"), "green took no traffic"
        green = stage.deploy_record()["green"]
        # During the bake Compose lists blue and green (both carry its labels).
        assert stage.compose_ps() == sorted([stage.blue, green])
        set_mode(stage.docker.containers.get(green), "500")

        record = stage.wait_stage("rolled_back", timeout=60)
        time.sleep(1.0)
        users.stop()

        print(f"compose switch back: {record['numbers']}")
        assert users.responses[-1].version == "v1"
        assert users.failed(since=time.time() - 0.5) == []
        assert_one_replica(stage, stage.images.v1)
        assert stage.servers()["blue"]["status"] != "MAINT"
        assert len(daemon.target(TARGET)["quarantined"]) == 1

    def test_a_release_caught_by_the_pre_checks_never_gets_user_traffic(
        self, compose_stage: ComposeStage, load_clients: list[LoadClient]
    ) -> None:
        stage = compose_stage
        bad = stage.derived_image("bad-500", mode="500")
        daemon = stage.start_daemon(stage.config())
        users = load(stage, load_clients)

        result = stage.deploy(bad)
        users.stop()

        assert result.returncode == 1, result.stdout + result.stderr
        assert "pre-promotion checks" in result.stdout, result.stdout
        assert users.served_by("bad-500") == []
        assert users.failed() == []
        assert_one_replica(stage, stage.images.v1)
        assert set(stage.servers()) == {"blue"}
        assert daemon.target(TARGET)["current_release"]["image_ref"] == stage.images.v1
        assert events(daemon, "new_release") == []

    def test_a_service_with_two_replicas_is_refused_with_a_conflict(
        self, compose_stage: ComposeStage
    ) -> None:
        """Two running replicas leave no single blue: a state of the target (409), not an
        engine that is away (503); nothing is started and HAProxy is not touched."""
        stage = compose_stage
        daemon = stage.start_daemon(stage.config())
        stage.docker.containers.run(
            stage.images.v1,
            detach=True,
            name=f"{stage.blue}-second",
            labels={
                PROJECT_LABEL: stage.project,
                SERVICE_LABEL: SERVICE,
                NUMBER_LABEL: "2",
                TEST_LABEL: "1",
                SESSION_LABEL: SESSION_ID,
            },
        )

        answer = daemon.post(f"/api/v1/targets/{TARGET}/deploy", {"image": stage.images.v2})

        assert answer.status_code == 409, answer.text
        assert "exactly one running replica" in answer.json()["error"], answer.text
        assert stage.app_containers() == sorted([stage.blue, f"{stage.blue}-second"])
        assert set(stage.servers()) == {"blue"}
        assert stage.deploy_record() == {}
