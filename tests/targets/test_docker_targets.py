"""The container and compose drivers against a real Docker engine.

Deploys are done the way a user's deploy script does them: the ``docker`` CLI, ``rm -f`` then
``run`` with the same flags and another image. Everything created here carries the test labels
and is removed by the ``objects`` fixture (anonymous volumes included, which the session sweep
cannot find by label).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from docker.errors import APIError, NotFound
from docker.types import IPAMConfig, IPAMPool

from tests.support import SESSION_ID, docker_labels, require, unique_name
from tests.support.images import AppImages, wait_http
from tests.support.ports import free_port
from watchdogd.engine.docker_api import DockerEngine
from watchdogd.errors import TargetError
from watchdogd.model import Release
from watchdogd.targets import container as container_module
from watchdogd.targets.compose import ComposeDriver
from watchdogd.targets.container import ContainerDriver

pytestmark = pytest.mark.docker

COMPOSE = "com.docker.compose"


@dataclass
class Objects:
    """What a test created; removed at teardown, volumes found through the containers."""

    client: Any
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: set[str] = field(default_factory=set)

    def network(self, subnet: bool = False) -> tuple[str, ipaddress.IPv4Network | None]:
        name = unique_name("wdt-net")
        for _ in range(20):
            net = ipaddress.IPv4Network(
                f"10.{random.randint(64, 250)}.{random.randint(0, 255)}.0/24"
            )
            ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(net))]) if subnet else None
            try:
                self.client.networks.create(
                    name, driver="bridge", ipam=ipam, labels=docker_labels()
                )
            except APIError as err:
                if subnet and "overlap" in str(err):
                    continue
                raise
            self.networks.append(name)
            return name, (net if subnet else None)
        pytest.fail("no free subnet for a test network")

    def volume(self) -> str:
        name = unique_name("wdt-vol")
        self.client.volumes.create(name, labels=docker_labels())
        self.volumes.add(name)
        return name

    def remember_mounts(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            attrs = self.client.api.inspect_container(name)
            self.volumes |= {m["Name"] for m in attrs["Mounts"] if m.get("Type") == "volume"}

    def cleanup(self) -> None:
        names = set(self.containers)
        for container in self.client.containers.list(all=True, filters={"name": SESSION_ID}):
            if any(container.name.startswith(n) for n in self.containers):
                names.add(container.name)
        for name in names:
            self.remember_mounts(name)
            with contextlib.suppress(NotFound, APIError):
                self.client.api.remove_container(name, force=True, v=True)
        for volume in self.volumes:
            with contextlib.suppress(NotFound, APIError):
                self.client.api.remove_volume(volume, force=True)
        for network in self.networks:
            with contextlib.suppress(NotFound, APIError):
                self.client.api.remove_network(network)


@pytest.fixture
def objects(docker_engine: Any) -> Iterator[Objects]:
    created = Objects(docker_engine)
    try:
        yield created
    finally:
        created.cleanup()


@pytest.fixture
def engine(docker_engine: Any) -> DockerEngine:
    # The session's client: same engine, same negotiated API version.
    return DockerEngine(client=docker_engine.api)


def docker_cli(*args: str) -> str:
    require(shutil.which("docker"), "the docker CLI")
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


@dataclass
class Deploy:
    """A deploy script: the same flags every time, only the image changes."""

    objects: Objects
    name: str
    run_flags: list[str]
    connect: list[list[str]] = field(default_factory=list)

    def run(self, image: str) -> dict[str, Any]:
        self.objects.remember_mounts(self.name)
        with contextlib.suppress(AssertionError):
            docker_cli("rm", "-f", self.name)
        docker_cli("run", "-d", "--name", self.name, *self.run_flags, image)
        for args in self.connect:
            docker_cli("network", "connect", *args, self.name)
        self.objects.remember_mounts(self.name)
        return inspect(self.objects.client, self.name)


def inspect(client: Any, name: str) -> dict[str, Any]:
    attrs: dict[str, Any] = client.api.inspect_container(name)
    return attrs


def label_flags(labels: dict[str, str]) -> list[str]:
    return [arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")]


@pytest.fixture
def full_deploy(objects: Objects) -> Deploy:
    """v1 with every kind of setting the container driver must carry over."""
    name = unique_name("wdt-web")
    objects.containers.append(name)
    net, subnet = objects.network(subnet=True)
    other, _ = objects.network()
    assert subnet is not None
    ip = str(subnet.network_address + 50)
    labels = docker_labels(
        team="payments",
        **{f"{COMPOSE}.project": "shop", f"{COMPOSE}.service": "web", f"{COMPOSE}.oneoff": "False"},
    )
    flags = [
        *label_flags(labels),
        "-e", "GREETING=hello world",
        "-e", "APP_SLOW_SECONDS=1",
        "-v", f"{objects.volume()}:/data",
        "-v", "/cache",
        "--network", net, "--network-alias", "web-alias", "--ip", ip,
        "--restart", "unless-stopped",
        "-p", f"127.0.0.1:{free_port()}:8080",
        "--user", "65534:65534",
        "--workdir", "/www",
        "--memory", "64m", "--cpus", "0.5",
        "--health-interval", "2s",
    ]  # fmt: skip
    return Deploy(objects, name, flags, connect=[["--alias", "side-alias", other]])


def host_port(attrs: dict[str, Any]) -> int:
    return int(attrs["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"])


def served_version(attrs: dict[str, Any]) -> str:
    return wait_http(f"http://127.0.0.1:{host_port(attrs)}/cgi-bin/version", 15).text.strip()


def comparable(attrs: dict[str, Any]) -> dict[str, Any]:
    """The fields a restore must bring back, as the issue lists them."""
    config, host = attrs["Config"], attrs["HostConfig"]
    short = attrs["Id"][:12]
    return {
        "name": attrs["Name"],
        "cmd": config["Cmd"],
        "entrypoint": config["Entrypoint"],
        "env": sorted(config["Env"]),
        "labels": config["Labels"],
        "exposed": sorted(config.get("ExposedPorts") or {}),
        "port_bindings": host["PortBindings"],
        "mounts": sorted(
            (m["Type"], m.get("Name") or m["Source"], m["Destination"], m["RW"])
            for m in attrs["Mounts"]
        ),
        "networks": {
            net: {
                "aliases": sorted(a for a in ep.get("Aliases") or [] if a != short),
                # {} (CLI connect) and null both mean "no static address".
                "ipam": ep.get("IPAMConfig") or None,
            }
            for net, ep in attrs["NetworkSettings"]["Networks"].items()
        },
        "restart": host["RestartPolicy"],
        "healthcheck": config.get("Healthcheck"),
        "memory": host["Memory"],
        "nano_cpus": host["NanoCpus"],
        "user": config["User"],
        "workdir": config["WorkingDir"],
        "volumes": sorted(config.get("Volumes") or {}),
    }


class TestContainerRoundTrip:
    async def test_restore_brings_back_v1_with_its_whole_configuration(
        self, app_images: AppImages, full_deploy: Deploy, engine: DockerEngine, docker_engine: Any
    ) -> None:
        """rm -f + run v2 keeps the config hash; restoring v1 brings back every setting."""
        driver = ContainerDriver("web", full_deploy.name, engine)
        original = full_deploy.run(app_images.v1)
        assert served_version(original) == "v1"
        good = await driver.current()
        assert good is not None
        assert good.image == app_images.ids["v1"]
        assert good.image_ref == app_images.v1

        bad_attrs = full_deploy.run(app_images.v2)
        bad = await driver.current()
        assert bad is not None
        assert bad.image == app_images.ids["v2"]
        assert bad.config_hash == good.config_hash

        # Restored from its stored form, as the daemon reads it back from the state store.
        stored = Release.from_json(good.to_json())
        began = time.monotonic()
        await driver.restore(stored, stop_timeout=10)
        swap_seconds = time.monotonic() - began
        restored = inspect(docker_engine, full_deploy.name)

        assert served_version(restored) == "v1"
        assert restored["Image"] == app_images.ids["v1"]
        assert restored["Config"]["Image"] == app_images.v1
        assert comparable(restored) == comparable(original)
        assert restored["Config"]["Hostname"] == restored["Id"][:12]
        for endpoint in restored["NetworkSettings"]["Networks"].values():
            assert original["Id"][:12] not in (endpoint.get("Aliases") or [])
        # The image's own env is not frozen in as user settings: v1's APP_MODE is back.
        assert "APP_MODE=ok" in restored["Config"]["Env"]
        after = await driver.current()
        assert after == good
        print(f"\nswap took {swap_seconds:.2f} s (bad container was {bad_attrs['Id'][:12]})")

    async def test_second_restore_is_a_no_op(
        self, app_images: AppImages, full_deploy: Deploy, engine: DockerEngine, docker_engine: Any
    ) -> None:
        """Restoring the release a container already runs changes nothing."""
        driver = ContainerDriver("web", full_deploy.name, engine)
        full_deploy.run(app_images.v1)
        good = await driver.current()
        assert good is not None
        full_deploy.run(app_images.v2)
        await driver.restore(good, stop_timeout=10)
        first = inspect(docker_engine, full_deploy.name)
        await driver.restore(good, stop_timeout=10)
        second = inspect(docker_engine, full_deploy.name)
        assert second["Id"] == first["Id"]
        assert second["State"]["StartedAt"] == first["State"]["StartedAt"]


@pytest.fixture
def simple_deploy(objects: Objects) -> Deploy:
    name = unique_name("wdt-web")
    objects.containers.append(name)
    flags = [*label_flags(docker_labels()), "-p", f"127.0.0.1:{free_port()}:8080"]
    return Deploy(objects, name, flags)


def leftovers(client: Any, name: str) -> list[str]:
    found = client.containers.list(all=True, filters={"name": f"{name}-wd-"})
    return [c.name for c in found]


class TestSwapFailure:
    async def test_taken_port_puts_the_old_container_back(
        self, app_images: AppImages, simple_deploy: Deploy, engine: DockerEngine, docker_engine: Any
    ) -> None:
        """The new container cannot bind its port: TargetError, and v2 runs again."""
        driver = ContainerDriver("web", simple_deploy.name, engine)
        v1_attrs = simple_deploy.run(app_images.v1)
        good = await driver.current()
        assert good is not None
        simple_deploy.run_flags[-1] = f"127.0.0.1:{free_port()}:8080"
        bad_attrs = simple_deploy.run(app_images.v2)
        with socket.socket() as blocker:
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind(("127.0.0.1", host_port(v1_attrs)))
            blocker.listen()
            with pytest.raises(TargetError, match="previous container is back"):
                await driver.restore(good, stop_timeout=10)
        back = inspect(docker_engine, simple_deploy.name)
        assert back["Id"] == bad_attrs["Id"]
        assert back["State"]["Running"]
        assert served_version(back) == "v2"
        assert leftovers(docker_engine, simple_deploy.name) == []

    async def test_missing_entrypoint_puts_the_old_container_back(
        self, app_images: AppImages, simple_deploy: Deploy, engine: DockerEngine, docker_engine: Any
    ) -> None:
        """A release whose entrypoint does not exist fails to start; v1 keeps running."""
        driver = ContainerDriver("web", simple_deploy.name, engine)
        v1_attrs = simple_deploy.run(app_images.v1)
        good = await driver.current()
        assert good is not None
        spec = {**good.spec, "Config": {**good.spec["Config"], "Entrypoint": ["/no/such/file"]}}
        broken = Release(good.target, good.image, "broken", good.image_ref, spec)
        with pytest.raises(TargetError, match="previous container is back"):
            await driver.restore(broken, stop_timeout=10)
        back = inspect(docker_engine, simple_deploy.name)
        assert back["Id"] == v1_attrs["Id"]
        assert back["State"]["Running"]
        assert served_version(back) == "v1"
        assert leftovers(docker_engine, simple_deploy.name) == []

    async def test_missing_image_is_a_clear_error_and_changes_nothing(
        self, app_images: AppImages, simple_deploy: Deploy, engine: DockerEngine, docker_engine: Any
    ) -> None:
        """A release whose image was deleted cannot be restored, and says so."""
        driver = ContainerDriver("web", simple_deploy.name, engine)
        attrs = simple_deploy.run(app_images.v1)
        good = await driver.current()
        assert good is not None
        gone = replace(
            good, image="sha256:" + "0" * 64, spec={**good.spec, "Image": "sha256:" + "0" * 64}
        )
        with pytest.raises(TargetError, match="no longer on this host"):
            await driver.restore(gone, stop_timeout=10)
        assert inspect(docker_engine, simple_deploy.name)["Id"] == attrs["Id"]


class TestCrashRecovery:
    async def test_renamed_away_old_container_is_put_back_then_swapped(
        self, app_images: AppImages, simple_deploy: Deploy, engine: DockerEngine, docker_engine: Any
    ) -> None:
        """A crash after renaming the old container away: the next restore completes."""
        driver = ContainerDriver("web", simple_deploy.name, engine)
        simple_deploy.run(app_images.v1)
        good = await driver.current()
        assert good is not None
        bad = simple_deploy.run(app_images.v2)
        # What a crash mid-swap leaves: the old one stopped and renamed, a temporary created.
        docker_engine.api.stop(bad["Id"], timeout=5)
        docker_engine.api.rename(bad["Id"], f"{simple_deploy.name}-wd-old-{bad['Id'][:12]}")
        docker_engine.api.create_container(
            app_images.v1, name=f"{simple_deploy.name}-wd-new-dead", labels=docker_labels()
        )
        await driver.restore(good, stop_timeout=10)
        now = inspect(docker_engine, simple_deploy.name)
        assert now["Image"] == app_images.ids["v1"]
        assert served_version(now) == "v1"
        assert leftovers(docker_engine, simple_deploy.name) == []

    async def test_promoted_but_unstarted_container_is_started(
        self, app_images: AppImages, simple_deploy: Deploy, engine: DockerEngine, docker_engine: Any
    ) -> None:
        """A crash after promoting the new container: the restore just starts it."""
        driver = ContainerDriver("web", simple_deploy.name, engine)
        simple_deploy.run(app_images.v1)
        good = await driver.current()
        assert good is not None
        old = simple_deploy.run(app_images.v2)
        docker_engine.api.stop(old["Id"], timeout=5)
        docker_engine.api.rename(old["Id"], f"{simple_deploy.name}-wd-old-{old['Id'][:12]}")
        # The v1 container, created from the release but never started.
        port = host_port(old)
        simple_deploy.run_flags[-1] = f"127.0.0.1:{port}:8080"
        docker_cli("create", "--name", simple_deploy.name, *simple_deploy.run_flags, app_images.v1)
        created = inspect(docker_engine, simple_deploy.name)
        await driver.restore(good, stop_timeout=10)
        now = inspect(docker_engine, simple_deploy.name)
        assert now["Id"] == created["Id"]
        assert now["State"]["Running"]
        assert leftovers(docker_engine, simple_deploy.name) == []


class TestCancellation:
    @pytest.mark.parametrize("delay", [0.05, 0.3])
    async def test_a_cancelled_restore_leaves_one_running_container(
        self,
        app_images: AppImages,
        simple_deploy: Deploy,
        engine: DockerEngine,
        docker_engine: Any,
        delay: float,
    ) -> None:
        """Cancelled mid-way, the swap either never began or runs to its end; never half."""
        driver = ContainerDriver("web", simple_deploy.name, engine)
        good, task = await restore_v1_over_v2(driver, simple_deploy, app_images)
        await asyncio.sleep(delay)
        await cancelled(task)
        # A swap already under way finishes on its own; wait for it.
        await asyncio.gather(*container_module._in_flight, return_exceptions=True)
        now = inspect(docker_engine, simple_deploy.name)
        assert now["State"]["Running"]
        assert now["Image"] in {app_images.ids["v1"], app_images.ids["v2"]}
        assert leftovers(docker_engine, simple_deploy.name) == []
        await driver.restore(good, stop_timeout=10)
        assert served_version(inspect(docker_engine, simple_deploy.name)) == "v1"

    async def test_a_restore_cancelled_while_the_engine_creates_leaves_nothing(
        self,
        app_images: AppImages,
        simple_deploy: Deploy,
        docker_engine: Any,
    ) -> None:
        """The engine goes on creating the temporary container after its caller is cancelled
        (the call runs in a thread): once it exists it is removed, and the deployed release
        runs on untouched (the CI saw a ``-wd-new-`` container left behind)."""
        creating = asyncio.Event()
        engine = CreatesSlowly(client=docker_engine.api, creating=creating)
        driver = ContainerDriver("web", simple_deploy.name, engine)
        _, task = await restore_v1_over_v2(driver, simple_deploy, app_images)
        await creating.wait()
        await cancelled(task)
        assert await asyncio.to_thread(engine.created.wait, 30)
        await asyncio.gather(*container_module._in_flight, return_exceptions=True)
        assert leftovers(docker_engine, simple_deploy.name) == []
        now = inspect(docker_engine, simple_deploy.name)
        assert now["State"]["Running"]
        assert served_version(now) == "v2"


async def restore_v1_over_v2(
    driver: ContainerDriver, deploy: Deploy, images: AppImages
) -> tuple[Release, asyncio.Task[None]]:
    """v1 deployed and seen by the driver, v2 deployed over it, and a restore of v1 begun."""
    deploy.run(images.v1)
    good = await driver.current()
    assert good is not None
    deploy.run(images.v2)
    return good, asyncio.create_task(driver.restore(good, stop_timeout=10))


async def cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class CreatesSlowly(DockerEngine):
    """The real engine, whose create is asked for a moment after the caller awaits it;
    ``created`` is set once the engine has created the container."""

    def __init__(self, *, client: Any, creating: asyncio.Event) -> None:
        super().__init__(client=client)
        self._creating = creating
        self.created = threading.Event()

    async def create(self, body: dict[str, Any], name: str) -> str:
        def late(api: Any) -> Any:
            time.sleep(0.5)
            try:
                return api.create_container_from_config(body, name=name)
            finally:
                self.created.set()

        self._creating.set()
        return str((await self.call(f"create container {name}", late))["Id"])


class TestHealthAndExec:
    async def test_health_follows_the_healthcheck(
        self, app_images: AppImages, simple_deploy: Deploy, engine: DockerEngine, docker_engine: Any
    ) -> None:
        """starting -> None, healthy -> True, stopped -> False."""
        driver = ContainerDriver("web", simple_deploy.name, engine)
        simple_deploy.run(app_images.v1)
        deadline = time.monotonic() + 15
        while (health := await driver.healthy()) is not True and time.monotonic() < deadline:
            assert health is None
            await asyncio.sleep(0.2)
        assert health is True
        docker_engine.api.stop(simple_deploy.name, timeout=5)
        assert await driver.healthy() is False
        missing = ContainerDriver("none", unique_name("wdt-missing"), engine)
        assert await missing.healthy() is False
        assert await missing.current() is None

    async def test_exec_returns_output_and_exit_code(
        self, app_images: AppImages, simple_deploy: Deploy, engine: DockerEngine
    ) -> None:
        """exec runs in the container, with env, and its time limit holds."""
        driver = ContainerDriver("web", simple_deploy.name, engine)
        simple_deploy.run(app_images.v1)
        result = await driver.exec(["sh", "-c", 'echo "$X"; exit 3'], env={"X": "hi"})
        assert (result.exit_code, result.output.strip()) == (3, "hi")
        began = time.monotonic()
        with pytest.raises(TargetError, match="no result after"):
            await driver.exec(["sleep", "5"], timeout=0.5)
        assert time.monotonic() - began < 3


class TestStoppedBySomebody:
    """The engine's events tell an operator's stop from a crash; inspect cannot."""

    async def test_docker_stop_and_kill_are_somebodys(
        self, app_images: AppImages, simple_deploy: Deploy, engine: DockerEngine
    ) -> None:
        driver = ContainerDriver("web", simple_deploy.name, engine)
        simple_deploy.run(app_images.v1)
        await driver.current()
        assert _held(driver) == frozenset()  # running
        docker_cli("stop", "-t", "1", simple_deploy.name)
        await driver.current()
        stopped = _held(driver)
        assert stopped == {inspect(simple_deploy.objects.client, simple_deploy.name)["Id"]}
        docker_cli("start", simple_deploy.name)
        await driver.current()
        assert _held(driver) == frozenset()  # its stop was before this start
        docker_cli("kill", simple_deploy.name)
        await driver.current()
        assert _held(driver) == stopped

    async def test_a_crash_is_nobodys(
        self, app_images: AppImages, objects: Objects, engine: DockerEngine
    ) -> None:
        """A container whose process exits by itself: no stop was asked for."""
        name = unique_name("wdt-crash")
        objects.containers.append(name)
        labels = label_flags(docker_labels())
        docker_cli(
            "run", "-d", "--name", name, *labels, "--entrypoint", "/bin/sh", app_images.v1,
            "-c", "exit 3",
        )  # fmt: skip
        driver = ContainerDriver("web", name, engine)
        deadline = time.monotonic() + 15
        while inspect(objects.client, name)["State"]["Status"] != "exited":
            assert time.monotonic() < deadline, "the crashing container did not exit"
            await asyncio.sleep(0.1)
        assert await driver.current() is not None
        assert _held(driver) == frozenset()

    async def test_asking_leaves_no_socket_open(self, engine: DockerEngine) -> None:
        """docker-py pools connections by full URL; each replay's URL is new (its times), and
        its pool is closed after it, not left holding a socket."""
        await engine.stop_requested("wdt-nothing", time.time() - 60)
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(30):
            assert await engine.stop_requested("wdt-nothing", time.time() - 60) is False
        assert len(os.listdir("/proc/self/fd")) <= before + 1

    async def test_pause_is_somebodys(
        self, app_images: AppImages, simple_deploy: Deploy, engine: DockerEngine
    ) -> None:
        driver = ContainerDriver("web", simple_deploy.name, engine)
        simple_deploy.run(app_images.v1)
        docker_cli("pause", simple_deploy.name)
        try:
            await driver.current()
            assert len(_held(driver)) == 1
        finally:
            docker_cli("unpause", simple_deploy.name)


def _held(driver: ContainerDriver) -> frozenset[str]:
    starts = driver.starts()
    assert starts is not None
    return starts.held


class TestCompose:
    async def test_every_replica_is_recreated_with_its_labels(
        self, app_images: AppImages, objects: Objects, engine: DockerEngine, docker_engine: Any
    ) -> None:
        """Two compose-labelled replicas: restore recreates both and keeps their labels."""
        project = f"wdtproj{SESSION_ID.replace('-', '')}{random.randint(0, 9999)}"
        net, _ = objects.network()
        deploys = []
        for number in (1, 2):
            name = f"{project}-web-{number}"
            objects.containers.append(name)
            labels = docker_labels(
                **{
                    f"{COMPOSE}.project": project,
                    f"{COMPOSE}.service": "web",
                    f"{COMPOSE}.container-number": str(number),
                    f"{COMPOSE}.oneoff": "False",
                    f"{COMPOSE}.config-hash": "abc123",
                }
            )
            flags = [
                *label_flags(labels),
                "--network", net, "--network-alias", "web", "--network-alias", name,
                "-e", "ROLE=web",
            ]  # fmt: skip
            deploys.append(Deploy(objects, name, flags))
        oneoff = f"{project}-web-run-1"
        objects.containers.append(oneoff)
        oneoff_labels = {**docker_labels(), f"{COMPOSE}.project": project}
        oneoff_labels |= {f"{COMPOSE}.service": "web", f"{COMPOSE}.oneoff": "True"}
        docker_cli("create", "--name", oneoff, *label_flags(oneoff_labels), app_images.v3)

        driver = ComposeDriver("shop", project, "web", engine)
        originals = [d.run(app_images.v1) for d in deploys]
        good = await driver.current()
        assert good is not None
        assert len(good.spec["replicas"]) == 2
        for d in deploys:
            d.run(app_images.v2)
        bad = await driver.current()
        assert bad is not None
        assert (bad.image, bad.config_hash) == (app_images.ids["v2"], good.config_hash)

        await driver.restore(good, stop_timeout=10)
        for original in originals:
            now = inspect(docker_engine, original["Name"])
            assert now["Image"] == app_images.ids["v1"]
            assert now["State"]["Running"]
            assert now["Config"]["Labels"] == original["Config"]["Labels"]
            assert comparable(now) == comparable(original)
        assert inspect(docker_engine, oneoff)["Image"] == app_images.ids["v3"]
        assert await driver.current() == good

        ids = [inspect(docker_engine, o["Name"])["Id"] for o in originals]
        await driver.restore(good, stop_timeout=10)
        assert [inspect(docker_engine, o["Name"])["Id"] for o in originals] == ids
        result = await driver.exec(["cat", "/proc/1/cmdline"])
        assert "entrypoint.sh" in result.output
