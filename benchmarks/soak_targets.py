"""The soak's targets and how a user deploys to them.

Every release carries its label (``good-7``, ``bad-500s-3``) so that what runs can be told
from outside: in the container's environment (``SOAK_RELEASE``) or as the release directory's
name. Good releases are the test app's v1 image with a new label (a new configuration, so a
new release); bad ones are ``mttr_app.FAULTS`` (500s, 3 s latency, failed login, crash loop,
unhealthy), each with a fresh label too, so that a bad release is caught by the gates, not
only by the quarantine of its image.

* :class:`ContainerTarget`: ``docker rm -f -v`` + ``docker run`` (``mttr_app.run_container``:
  ``--restart always``, a 2 s HEALTHCHECK, the port on 127.0.0.1);
* :class:`ComposeTarget`: a real ``docker-compose`` (1.29, Debian's) ``up -d`` of a service
  with an anonymous volume ``/data``, sometimes with ``--renew-anon-volumes``;
* :class:`ReleaseDirTarget`: ``releases/<label>`` and an atomic switch of ``current``, served
  by the end-to-end tests' ``ReleaseApp`` (200 while ``mode`` reads ``ok``, else 500).

A blue-green target (``watchdogd deploy``) is one more class with the same three methods.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import docker
from docker.errors import APIError, NotFound
from mttr_app import LABEL, Fault, app_checks, run_container

# The end-to-end tests' app: 200 while current/mode reads "ok", else 500.
from tests.e2e.conftest import ReleaseApp

COMPOSE_SERVICE = "web"
RUN_LABEL = "watchdogd.soak"


class SoakTarget(Protocol):
    name: str
    url: str
    faults: tuple[str, ...]  # the fault names this target can be broken with

    def deploy(self, label: str, fault: Fault | None, how: str) -> str:
        """Deploy release ``label`` (bad with ``fault``); returns how it was done."""

    def running(self) -> str | None:
        """The label of the release that runs now, read from the engine or the disk."""

    def restart(self) -> str | None:
        """Restart what runs by hand, as an operator does (``docker restart``); returns how, or
        ``None`` where nothing is restarted by hand."""

    def stop_by_hand(self) -> str | None:
        """Stop what runs by hand (``docker stop``); returns how, or ``None`` where nothing is
        stopped by hand."""

    def start_by_hand(self) -> None:
        """Start again what ``stop_by_hand`` stopped."""

    def config(self) -> str:
        """The target's YAML block (the part after ``- name: …``'s dash), indented by 4."""


def _env(label: str, fault: Fault | None) -> dict[str, str]:
    return {"SOAK_RELEASE": label, **(fault.env if fault else {})}


def _image(refs: dict[str, str], fault: Fault | None) -> str:
    return refs[fault.image if fault else "v1"]


def label_of_env(env: list[str] | None) -> str | None:
    for item in env or []:
        if item.startswith("SOAK_RELEASE="):
            return item.split("=", 1)[1]
    return None


# The soak's targets get ``bench_mttr``'s checks and gates, with ``for: 8s`` on ``unhealthy`` to
# ride out a Compose recreate (docs/signals-and-gates.md).
RIDE_OUT_RECREATE = "for: 8s"


@dataclass
class ContainerTarget:
    client: docker.DockerClient
    refs: dict[str, str]
    container: str
    port: int
    run_id: str
    name: str = "ctr"
    faults: tuple[str, ...] = ("500s", "latency 3s", "auth failure", "crash loop", "unhealthy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def deploy(self, label: str, fault: Fault | None, how: str = "") -> str:
        with contextlib.suppress(NotFound):
            # -v: the user's own deploys leave no volume behind, so any left is watchdogd's.
            self.client.api.remove_container(self.container, force=True, v=True)
        run_container(
            self.client,
            self.container,
            _image(self.refs, fault),
            self.port,
            env=_env(label, fault),
            labels={RUN_LABEL: self.run_id},
        )
        return "docker rm -f + run"

    def running(self) -> str | None:
        try:
            attrs = self.client.api.inspect_container(self.container)
        except NotFound:
            return None
        return label_of_env(attrs["Config"].get("Env"))

    def restart(self) -> str | None:
        self.client.api.restart(self.container, timeout=2)
        return "docker restart"

    def stop_by_hand(self) -> str | None:
        self.client.api.stop(self.container, timeout=2)
        return "docker stop"

    def start_by_hand(self) -> None:
        self.client.api.start(self.container)

    def config(self) -> str:
        return f"    container: {self.container}\n" + app_checks(
            self.url, unhealthy=RIDE_OUT_RECREATE
        )


@dataclass
class ComposeTarget:
    client: docker.DockerClient
    refs: dict[str, str]
    project: str
    port: int
    workdir: Path
    run_id: str
    name: str = "compose"
    faults: tuple[str, ...] = ("500s", "latency 3s", "auth failure", "crash loop", "unhealthy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def file(self) -> Path:
        return self.workdir / "docker-compose.yml"

    def _write(self, label: str, fault: Fault | None) -> None:
        env = "".join(f"      {k}: {v!r}\n" for k, v in sorted(_env(label, fault).items()))
        self.file.write_text(
            f"""\
version: "2.4"
services:
  {COMPOSE_SERVICE}:
    image: {_image(self.refs, fault)}
    environment:
{env}    ports: ["127.0.0.1:{self.port}:8080"]
    restart: always
    volumes: ["/data"]
    labels: {{{LABEL}: "1", {RUN_LABEL}: "{self.run_id}"}}
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O- http://127.0.0.1:8080/cgi-bin/health || exit 1"]
      interval: 2s
      timeout: 1s
      retries: 2
"""
        )

    def compose(self, *args: str, timeout: float = 120) -> None:
        argv = ["docker-compose", "-p", self.project, "-f", str(self.file), *args]
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()[-1500:]}")

    def _volumes(self) -> set[str]:
        names = set()
        for summary in self._containers():
            for mount in summary.get("Mounts") or []:
                if mount.get("Type") == "volume":
                    names.add(str(mount.get("Name")))
        return names

    def _containers(self) -> list[dict[str, Any]]:
        filters = {"label": [f"com.docker.compose.project={self.project}"]}
        found: list[dict[str, Any]] = self.client.api.containers(all=True, filters=filters)
        return found

    def deploy(self, label: str, fault: Fault | None, how: str = "up") -> str:
        before = self._volumes()
        self._write(label, fault)
        if how == "renew":
            self.compose("up", "-d", "--renew-anon-volumes")
        else:
            self.compose("up", "-d")
        # Compose keeps a replaced container's anonymous volume unless it carries it over;
        # a careful user prunes it, so that whatever is left at the end is watchdogd's.
        for volume in before - self._volumes():
            with contextlib.suppress(NotFound, APIError):
                self.client.api.remove_volume(volume)
        return "docker-compose up -d" + (" --renew-anon-volumes" if how == "renew" else "")

    def running(self) -> str | None:
        for summary in self._containers():
            if summary.get("Labels", {}).get("com.docker.compose.service") == COMPOSE_SERVICE:
                name = summary["Names"][0].lstrip("/")
                if "-wd-" in name:
                    continue
                attrs = self.client.api.inspect_container(summary["Id"])
                return label_of_env(attrs["Config"].get("Env"))
        return None

    def restart(self) -> str | None:
        self.compose("restart", "-t", "2", COMPOSE_SERVICE)
        return "docker-compose restart"

    def stop_by_hand(self) -> str | None:
        self.compose("stop", "-t", "2", COMPOSE_SERVICE)
        return "docker-compose stop"

    def start_by_hand(self) -> None:
        self.compose("start", COMPOSE_SERVICE)

    def config(self) -> str:
        return (
            f"    compose: {{project: {self.project}, service: {COMPOSE_SERVICE}}}\n"
            + app_checks(self.url, unhealthy=RIDE_OUT_RECREATE)
        )

    def down(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.compose("down", "-v", "--remove-orphans")


class ReleaseDirTarget:
    """``root/releases/<label>/mode`` and ``root/current``, served on 127.0.0.1."""

    name = "dir"
    faults = ("500s",)

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "releases").mkdir(parents=True)
        handler = type("App", (ReleaseApp,), {"root": root})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def deploy(self, label: str, fault: Fault | None, how: str = "") -> str:
        release = self.root / "releases" / label
        release.mkdir()
        (release / "mode").write_text("500" if fault else "ok")
        temporary = self.root / "current.deploy"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(release)
        os.replace(temporary, self.root / "current")
        return "switch current"

    def running(self) -> str | None:
        try:
            return (self.root / "current").resolve(strict=True).name
        except OSError:
            return None

    def restart(self) -> str | None:
        return None  # the app's restart is the target's own `restart` command

    def stop_by_hand(self) -> str | None:
        return None  # no container to stop

    def start_by_hand(self) -> None:
        return None

    def config(self) -> str:
        return f"""\
    release_dir: {{path: {self.root}, restart: ["true"]}}
    checks:
      - {{name: api, type: http, url: "{self.url}/", interval: 1s, timeout: 1s}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
"""

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
