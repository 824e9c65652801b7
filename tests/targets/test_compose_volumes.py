"""A real Compose (Debian's ``docker-compose`` 1.29) deploys a service with an anonymous volume;
the restore must not leave the bad container's fresh anonymous volume behind.

``docker-compose up -d --renew-anon-volumes`` gives the bad release a new anonymous volume at
``/data``; the restore mounts the good release's volume by name again, so the bad one has no
user any more and must go (issue #16's known gap). Found first by ``benchmarks/soak.py``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, NotFound

from tests.support import SESSION_ID, SESSION_LABEL, TEST_LABEL, require, unique_name
from tests.support.images import AppImages, wait_http
from tests.support.ports import free_port
from watchdogd.engine.docker_api import DockerEngine
from watchdogd.targets.compose import ComposeDriver

pytestmark = pytest.mark.docker

SERVICE = "web"


class Compose:
    """One project in its own directory, driven by the ``docker-compose`` binary."""

    def __init__(self, directory: Path, images: AppImages, client: Any) -> None:
        binary = shutil.which("docker-compose")
        require(binary, "docker-compose (Debian package docker-compose)")
        assert binary is not None
        self.binary = binary
        self.directory = directory
        self.images = images
        self.client = client
        self.project = unique_name("wdtvol").replace("-", "")
        self.port = free_port()
        self.volumes: set[str] = set()

    def up(self, release: str, *flags: str) -> None:
        (self.directory / "docker-compose.yml").write_text(
            f"""\
version: "2.4"
services:
  {SERVICE}:
    image: {self.images[release]}
    ports: ["127.0.0.1:{self.port}:8080"]
    volumes: ["/data"]
    labels: {{{TEST_LABEL}: "1", {SESSION_LABEL}: "{SESSION_ID}"}}
"""
        )
        self.run("up", "-d", *flags)
        self.volumes |= self.mounted()
        wait_http(f"http://127.0.0.1:{self.port}/cgi-bin/version", 30)

    def run(self, *args: str) -> None:
        result = subprocess.run(
            [self.binary, "-p", self.project, *args],
            cwd=self.directory,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 0, f"docker-compose {' '.join(args)}: {result.stderr}"

    def driver(self) -> ComposeDriver:
        engine = DockerEngine(client=self.client.api)
        return ComposeDriver("web", self.project, SERVICE, engine)

    def containers(self) -> list[dict[str, Any]]:
        filters = {"label": [f"com.docker.compose.project={self.project}"]}
        found: list[dict[str, Any]] = self.client.api.containers(all=True, filters=filters)
        return found

    def mounted(self) -> set[str]:
        return {
            str(m["Name"])
            for c in self.containers()
            for m in c.get("Mounts") or []
            if m.get("Type") == "volume"
        }

    def volume_exists(self, name: str) -> bool:
        try:
            self.client.api.inspect_volume(name)
        except NotFound:
            return False
        return True

    def down(self) -> None:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self.run("down", "-v", "--remove-orphans")
        for volume in self.volumes:
            with contextlib.suppress(NotFound, APIError):
                self.client.api.remove_volume(volume, force=True)


@pytest.fixture
def compose(tmp_path: Path, app_images: AppImages, docker_engine: Any) -> Iterator[Compose]:
    project = Compose(tmp_path, app_images, docker_engine)
    try:
        yield project
    finally:
        project.down()


class TestComposeVolumes:
    async def test_restore_removes_the_bad_containers_fresh_anonymous_volume(
        self, compose: Compose, docker_engine: Any
    ) -> None:
        """v1 with volume A; v2 by ``up --renew-anon-volumes`` with a fresh B; the restore
        runs v1 on A again and B is gone; A and the service are intact."""
        driver = ComposeDriver(
            "web", compose.project, SERVICE, DockerEngine(client=docker_engine.api)
        )
        compose.up("v1")
        (good_volume,) = compose.mounted()
        good = await driver.current()
        assert good is not None

        compose.up("v2", "--renew-anon-volumes")
        (bad_volume,) = compose.mounted()
        assert bad_volume != good_volume

        await driver.restore(good, stop_timeout=5)

        assert compose.mounted() == {good_volume}
        assert not compose.volume_exists(bad_volume)
        assert compose.volume_exists(good_volume)
        assert await driver.current() == good
        version = wait_http(f"http://127.0.0.1:{compose.port}/cgi-bin/version", 30)
        assert version.text.strip() == "v1"

    async def test_a_volume_the_restored_container_mounts_is_kept(
        self, compose: Compose, docker_engine: Any
    ) -> None:
        """A plain ``up`` carries the anonymous volume over to v2: the restore keeps it."""
        driver = ComposeDriver(
            "web", compose.project, SERVICE, DockerEngine(client=docker_engine.api)
        )
        compose.up("v1")
        (volume,) = compose.mounted()
        good = await driver.current()
        assert good is not None
        compose.up("v2")
        assert compose.mounted() == {volume}

        await driver.restore(good, stop_timeout=5)

        assert compose.mounted() == {volume}
        assert compose.volume_exists(volume)


class TestComposeTemporaries:
    async def test_a_container_compose_is_replacing_is_not_a_replica(
        self, compose: Compose, docker_engine: Any
    ) -> None:
        """Mid-recreate, Compose renames the container it replaces ``<short id>_<name>``
        (stopped, every label kept) until it removes it. The driver ignores such a container:
        it is neither what runs, nor an unhealthy replica, nor recreated by a restore (the
        soak saw a restore fail on its port). Compose's moment cannot be held still, so the
        leftover is made as Compose leaves it: a stopped v1 container with the replica's
        labels under the replaced container's temporary name."""
        driver = compose.driver()
        compose.up("v1")
        good = await driver.current()
        assert good is not None
        (replica,) = compose.containers()
        name = replica["Names"][0].lstrip("/")
        temporary = f"{replica['Id'][:12]}_{name}"
        compose.up("v2")
        leftover = docker_engine.api.create_container(
            compose.images["v1"],
            name=temporary,
            labels=replica["Labels"],
        )

        current = await driver.current()
        assert current is not None
        assert len(current.spec["replicas"]) == 1
        assert await driver.healthy() is not False
        await driver.restore(good, stop_timeout=5)

        kept = docker_engine.api.inspect_container(leftover["Id"])
        assert kept["Name"] == f"/{temporary}"
        assert not kept["State"]["Running"]
        assert await driver.current() == good
