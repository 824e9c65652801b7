"""DockerHealthWatcher against real Docker engines.

Most tests use the shared engine (``docker_engine``) and the test app images. The engine
restart test starts a *private* dockerd and stops and restarts that one: the shared engine
serves every other test, and other sessions, at the same time, and stopping it would break
them. The private engine is a real dockerd started like the shared one (``setsid dockerd
--host ...``), with its own socket, data root, exec root, pid file and cgroup parent, and in
its own network namespace (``unshare --net``): a dockerd creates, and with ``--bridge=none``
even deletes, the host's ``docker0``, which belongs to the shared engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.sources.test_source_http import RecordingSink, Sample
from tests.support import docker_labels, require, unique_name
from tests.support.images import AppImages, run_app, set_mode
from watchdogd.config.schema import DockerSettings
from watchdogd.config.validation import parse
from watchdogd.engine.docker_api import DockerEngine
from watchdogd.errors import TargetError
from watchdogd.sources.docker_health import ContainerSelector, DockerHealthWatcher


def shared_host() -> str:
    """The shared engine's address, as the ``docker_engine`` fixture finds it."""
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def settings(host: str) -> DockerSettings:
    return parse(DockerSettings, {"host": host, "poll_interval": "1s", "timeout": "5s"})


@contextlib.asynccontextmanager
async def watching(watcher: DockerHealthWatcher) -> AsyncIterator[DockerHealthWatcher]:
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def is_ok(sample: Sample) -> bool:
    return sample.kind == "probe" and sample.ok is True


def failed_with(text: str) -> Any:
    return lambda s: s.kind == "probe" and s.ok is False and text in s.detail


class TestWatcherWithoutEngine:
    async def test_unreachable_engine_is_unknown(self, tmp_path: Path) -> None:
        """An engine that is not there makes every subscription unknown, never failed."""
        watcher = DockerHealthWatcher(settings(f"unix://{tmp_path}/no-such.sock"))
        sinks = [RecordingSink(), RecordingSink()]
        watcher.subscribe(ContainerSelector("container", "web"), sinks[0])
        watcher.subscribe(ContainerSelector("swarm", "api"), sinks[1])
        await watcher.poll_once()
        for sink in sinks:
            assert [s.kind for s in sink.samples] == ["unknown"]
            assert "docker engine unreachable" in sink.last.detail

    async def test_the_watcher_says_what_the_drivers_say(self, tmp_path: Path) -> None:
        """One adapter, one error text: the watcher's unknown carries the drivers' message."""
        host = f"unix://{tmp_path}/no-such.sock"
        with pytest.raises(TargetError) as caught:
            await DockerEngine(host, 5).call(f"docker engine at {host}", lambda api: api.ping())
        watcher = DockerHealthWatcher(settings(host))
        sink = RecordingSink()
        watcher.subscribe(ContainerSelector("container", "web"), sink)
        await watcher.poll_once()
        assert sink.last.detail == f"docker engine unreachable: {caught.value}"


@pytest.mark.docker
class TestSharedEngine:
    async def test_unhealthy_then_killed(self, docker_engine: Any, app_images: AppImages) -> None:
        """A container turned unhealthy, then killed, is reported as failing both times."""
        app = run_app(docker_engine, app_images.v1)
        sink = RecordingSink()
        watcher = DockerHealthWatcher(settings(shared_host()))
        watcher.subscribe(ContainerSelector("container", app.container.name), sink)
        async with watching(watcher):
            await sink.wait_for(is_ok)
            await asyncio.to_thread(set_mode, app.container, "unhealthy")
            unhealthy = await sink.wait_for(failed_with("health unhealthy"))
            await asyncio.to_thread(app.container.kill)
            died = await sink.wait_for(failed_with("died (exit code 137)"), unhealthy)
            exited = await sink.wait_for(failed_with("exited"), died)
        assert "exit code 137" in sink.samples[exited].detail
        assert sink.of("unknown") == []

    async def test_compose_selector_and_on_change(
        self, docker_engine: Any, app_images: AppImages
    ) -> None:
        """A compose service with no container fails; its container's creation and start
        call on_change, and a healthy container is ok."""
        project = unique_name("proj")
        selector = ContainerSelector("compose", "web", project)
        changes: list[str] = []
        sink = RecordingSink()
        watcher = DockerHealthWatcher(settings(shared_host()), on_change=changes.append)
        watcher.subscribe(selector, sink)
        async with watching(watcher):
            await sink.wait_for(failed_with("no container matches compose:"))
            labels = {"com.docker.compose.project": project, "com.docker.compose.service": "web"}
            await asyncio.to_thread(
                run_app, docker_engine, app_images.v1, labels=labels, wait=False
            )
            await sink.wait_for(is_ok)
        assert f"compose:{project}/web" in changes


# --------------------------------------------------------------------------- private engine


@dataclass
class PrivateEngine:
    """A dockerd of our own: we start it, stop it and start it again, by pid."""

    root: Path
    log: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.log = self.root / "dockerd.log"
        (self.root / "daemon.json").write_text("{}")

    @property
    def host(self) -> str:
        return f"unix://{self.root}/docker.sock"

    @property
    def argv(self) -> list[str]:
        root = self.root
        return [
            # execs dockerd in a new network namespace: its docker0 and iptables are its own.
            "unshare",
            "--net",
            "--",
            "dockerd",
            f"--host={self.host}",
            f"--data-root={root}/data",
            f"--exec-root={root}/exec",
            f"--pidfile={root}/docker.pid",
            f"--config-file={root}/daemon.json",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--storage-driver=vfs",
            "--cgroup-parent=/watchdogd-test",
        ]

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"private dockerd exited:\n{self.log.read_text()[-3000:]}")
            if self.answers():
                return
            time.sleep(0.2)
        pytest.fail(f"private dockerd did not answer:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM, as ``pkill dockerd`` would send, then wait for the exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def answers(self) -> bool:
        try:
            client = self.client()
        except docker.errors.DockerException:
            return False
        try:
            return bool(client.ping())
        except docker.errors.DockerException:
            return False
        finally:
            client.close()

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, version="auto", timeout=60)


@pytest.fixture(scope="module")
def private_engine(docker_engine: Any, app_images: AppImages) -> Iterator[PrivateEngine]:
    require(shutil.which("dockerd"), "the dockerd binary")
    require(shutil.which("unshare"), "unshare (util-linux), to isolate a private dockerd")
    require(os.geteuid() == 0, "root, to run a private dockerd")
    # Short path: the engine's sockets must fit in 108 bytes.
    engine = PrivateEngine(Path(tempfile.mkdtemp(prefix="wdt-dockerd-", dir="/tmp")))
    try:
        engine.start()
        # By reference, so the archive carries this session's tag (an identical image may
        # carry other sessions' tags too), and tagged again after loading to be sure.
        image = b"".join(docker_engine.api.get_image(app_images.v1))
        client = engine.client()
        repository, tag = app_images.v1.rsplit(":", 1)
        for loaded in client.images.load(image):
            loaded.tag(repository, tag)
        client.close()
        yield engine
    finally:
        with contextlib.suppress(Exception):
            client = engine.client()
            for container in client.containers.list(all=True):
                container.remove(force=True)
            client.close()
        engine.stop()
        shutil.rmtree(engine.root, ignore_errors=True)


@pytest.mark.docker
@pytest.mark.slow
class TestEngineRestart:
    async def test_engine_restart_is_unknown_not_a_breach(
        self, private_engine: PrivateEngine, app_images: AppImages
    ) -> None:
        """While the engine is down the container is unknown; no failure is reported between
        the engine stopping and the container being healthy again, which a re-list finds."""
        name = unique_name("wdt-restart")
        client = private_engine.client()
        client.containers.run(
            app_images.v1,
            name=name,
            detach=True,
            network_mode="none",
            restart_policy={"Name": "always"},
            labels=docker_labels(),
        )
        client.close()
        sink = RecordingSink()
        changes: list[str] = []
        watcher = DockerHealthWatcher(settings(private_engine.host), on_change=changes.append)
        watcher.subscribe(ContainerSelector("container", name), sink)
        async with watching(watcher):
            await sink.wait_for(is_ok)
            stopped_at = len(sink.samples)
            await asyncio.to_thread(private_engine.stop)
            down = await sink.wait_for(lambda s: s.kind == "unknown", stopped_at)
            await asyncio.to_thread(private_engine.start)
            back = await sink.wait_for(is_ok, down)
        outage = sink.samples[stopped_at:back]
        assert [s for s in outage if s.kind == "probe" and s.ok is False] == []
        assert all("docker engine unreachable" in s.detail for s in outage if s.kind == "unknown")
        assert sink.samples[back].ok is True
