"""``watchdogd demo --docker``: the same story with a container.

The sample app image is built on this host from ``image/`` (busybox ``httpd`` with CGI
scripts, ``FROM scratch`` plus Debian's static busybox): no registry, no base image to pull.
Two tags are built, v1 and v2 (with the fault baked in). v1 runs as one container with its
port published on 127.0.0.1; the deploy replaces it by a v2 container of the same name, as a
deploy script's ``docker rm -f`` + ``docker run`` would. watchdogd's container target then
recreates it from v1.

Every container and image carries the label ``watchdogd.demo=<run id>`` (plus ``--label``s),
and ``close`` removes all of them, including the renamed containers a recreate leaves behind
for a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

from docker.errors import BuildError, DockerException, ImageNotFound, NotFound

from watchdogd.demo import scenario
from watchdogd.demo.release import BAD, GOOD
from watchdogd.demo.stage import RESTORED_GRACE, answers_within
from watchdogd.engine.docker_api import DEFAULT_HOST, explain, sdk_client
from watchdogd.errors import DemoError

IMAGE_DIR = Path(__file__).with_name("image")
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
REPOSITORY = "watchdogd-demo/app"
LABEL = "watchdogd.demo"
START_TIMEOUT = 20.0


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a program interpreter: one that runs in an image
    with nothing else in it."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if data[:4] != b"\x7fELF":
        return False
    order = "<" if data[5] == 1 else ">"
    if data[4] == 2:  # 64-bit
        (phoff,) = struct.unpack_from(order + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x36)
    else:
        (phoff,) = struct.unpack_from(order + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x2A)
    pt_interp = 3
    return all(
        struct.unpack_from(order + "I", data, phoff + i * phentsize)[0] != pt_interp
        for i in range(phnum)
    )


def static_busybox() -> Path | None:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate).resolve()
        if is_static_elf(path):
            return path
    return None


class DockerStage:
    template = scenario.DOCKER_TEMPLATE
    traffic_path = "/cgi-bin/api"
    app_log: Path | None = None  # the app logs to the container's output

    def __init__(
        self,
        root: Path,
        fault: str,
        port: int,
        *,
        labels: dict[str, str],
        client: Any,
        busybox: Path,
    ) -> None:
        self.root = root
        self.fault = fault
        self.port = port
        self.client = client
        self.busybox = busybox
        self.run_id = secrets.token_hex(4)
        self.labels = {**labels, LABEL: self.run_id}
        self.name = f"watchdogd-demo-{self.run_id}"
        self.images = {version: f"{REPOSITORY}:{self.run_id}-{version}" for version in (GOOD, BAD)}
        self.host = os.environ.get("DOCKER_HOST", DEFAULT_HOST)
        self.app_url = f"http://127.0.0.1:{port}"
        self.description = f"container {self.name}"

    @classmethod
    def create(cls, root: Path, fault: str, port: int, labels: dict[str, str]) -> DockerStage:
        """A stage, or ``DemoError`` saying what is missing for one."""
        busybox = static_busybox()
        if busybox is None:
            raise DemoError(
                "--docker builds the app image from a statically linked busybox, and none is "
                f"at {' or '.join(BUSYBOX_CANDIDATES)} (Debian: apt-get install busybox-static)"
            )
        host = os.environ.get("DOCKER_HOST", DEFAULT_HOST)
        try:
            client = sdk_client(host, timeout=30)
            client.ping()
        except DockerException as err:
            raise DemoError(
                f"--docker needs a Docker engine, and none answers at {host} ({explain(err)}). "
                "Start one, or run `watchdogd demo` without --docker: it needs no engine."
            ) from err
        return cls(root, fault, port, labels=labels, client=client, busybox=busybox)

    def config(self, listen: str, token_file: Path, state_dir: Path) -> str:
        return scenario.render(
            self.template,
            paths={"token_file": str(token_file), "state_dir": str(state_dir)},
            words={
                "listen": listen,
                "app": self.app_url,
                "container": self.name,
                "docker_host": self.host,
            },
        )

    async def start(self) -> str:
        await asyncio.to_thread(self._build)
        await asyncio.to_thread(self._run, GOOD)
        await self._wait_answering(GOOD)
        return f"built {self.images[GOOD]} and {self.images[BAD]}; {self.name} runs {GOOD}"

    async def deploy(self) -> str:
        await asyncio.to_thread(self._replace, BAD)
        return f"deployed: {self.name} replaced by a container of {self.images[BAD]}"

    async def restored(self) -> tuple[bool, str]:
        try:
            container = await asyncio.to_thread(self.client.containers.get, self.name)
            good = await asyncio.to_thread(self.client.images.get, self.images[GOOD])
        except DockerException as err:
            return False, f"cannot inspect {self.name}: {explain(err)}"
        if container.image.id != good.id:
            return False, f"{self.name} runs {container.image.tags or container.image.id}"
        ok, seen = await answers_within(f"{self.app_url}/cgi-bin/health", GOOD, RESTORED_GRACE)
        return ok, f"{self.name} runs {self.images[GOOD]}; {seen}"

    async def close(self) -> None:
        await asyncio.to_thread(self._remove_all)

    # --- docker-py, in worker threads -------------------------------------------------------

    def _build(self) -> None:
        context = self.root / "image"
        shutil.rmtree(context, ignore_errors=True)
        shutil.copytree(IMAGE_DIR, context)
        shutil.copy2(self.busybox, context / "busybox")
        for version, fault in ((GOOD, "none"), (BAD, self.fault)):
            try:
                self.client.images.build(
                    path=str(context),
                    tag=self.images[version],
                    buildargs={"VERSION": version, "FAULT": fault},
                    labels=self.labels,
                    rm=True,
                    forcerm=True,
                    pull=False,
                )
            except (BuildError, DockerException) as err:
                raise DemoError(f"building {self.images[version]} failed: {explain(err)}") from err

    def _run(self, version: str) -> None:
        try:
            self.client.containers.run(
                self.images[version],
                name=self.name,
                detach=True,
                labels=self.labels,
                ports={"8080/tcp": ("127.0.0.1", self.port)},
            )
        except DockerException as err:
            raise DemoError(f"cannot run {self.images[version]}: {explain(err)}") from err

    def _replace(self, version: str) -> None:
        with contextlib.suppress(NotFound):
            self.client.containers.get(self.name).remove(force=True)
        self._run(version)

    async def _wait_answering(self, version: str) -> None:
        url = f"{self.app_url}/cgi-bin/health"
        ok, seen = await answers_within(url, version, START_TIMEOUT)
        if not ok:
            raise DemoError(f"{self.name} did not answer in {START_TIMEOUT:g} s: {seen}")

    def _remove_all(self) -> None:
        try:
            containers = self.client.containers.list(
                all=True, filters={"label": f"{LABEL}={self.run_id}"}
            )
            for container in containers:
                with contextlib.suppress(NotFound):
                    container.remove(force=True)
            for ref in self.images.values():
                with contextlib.suppress(ImageNotFound, NotFound):
                    self.client.images.remove(ref, force=True)
        except DockerException as err:
            # The summary must still print; say what may be left and how to find it.
            print(
                "watchdogd demo: could not remove its containers and images "
                f"({explain(err)}); they carry the label {LABEL}={self.run_id}",
                file=sys.stderr,
            )
        finally:
            self.client.close()
