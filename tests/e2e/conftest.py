"""End-to-end helpers: the real daemon process, its audit log, and apps it watches.

The daemon runs as ``python -m watchdogd run`` (``tests.support.daemon.start_daemon``); every
process a test starts is killed at teardown. Docker objects carry ``docker_labels()`` and are
removed at teardown too (the session sweep is only the safety net).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, NotFound

from tests.support import docker_labels, unique_name
from tests.support.daemon import TOKEN, DaemonProcess, daemon_yaml, start_daemon
from tests.support.images import run_app
from tests.support.ports import free_port
from tests.support.waiting import wait_for

Event = dict[str, Any]


# --------------------------------------------------------------------------- the daemon


def events(daemon: DaemonProcess, kind: str | None = None) -> list[Event]:
    """The audit log, oldest first (optionally only events of ``kind``)."""
    found = daemon.get("/api/v1/events?limit=500").json()["events"]
    return [e for e in reversed(found) if kind is None or e["kind"] == kind]


def wait_event(
    daemon: DaemonProcess,
    kind: str,
    where: Callable[[Event], bool] = lambda _e: True,
    timeout: float = 60.0,
) -> Event:
    """The first audit event of ``kind`` matching ``where``; fails with the log's tail."""

    def found() -> Event | None:
        alive(daemon)
        return next((e for e in events(daemon, kind) if where(e)), None)

    return wait_for(
        f"a {kind} event", found, timeout=timeout, interval=0.2, context=lambda: trail(daemon)
    )


def wait_file(path: Path, daemon: DaemonProcess, timeout: float = 60.0) -> None:
    def appeared() -> bool:
        alive(daemon)
        return path.exists()

    wait_for(f"{path}", appeared, timeout=timeout, interval=0.05, context=lambda: trail(daemon))


def alive(daemon: DaemonProcess) -> None:
    """Fail at once, with its log, when the daemon a test waits on has exited."""
    if daemon.process.poll() is not None:
        raise AssertionError(f"daemon exited: {daemon.log.read_text()[-4000:]}")


def trail(daemon: DaemonProcess) -> str:
    """The audit log and the daemon log's tail, for a failed wait."""
    seen = "\n".join(f"{e['kind']}: {e['message']}" for e in events(daemon))
    return f"audit log:\n{seen}\n--- daemon log ---\n{daemon.log.read_text()[-4000:]}"


def sigkill(daemon: DaemonProcess) -> None:
    """What a power cut or the OOM killer does: no shutdown code runs."""
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(timeout=10)


@dataclass
class Daemons:
    """Starts daemon processes (each logging to its own file) and kills them all at teardown."""

    tmp_path: Path
    port: int = field(default_factory=free_port)
    started: list[DaemonProcess] = field(default_factory=list)

    def start(self, config: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        run = self.tmp_path / f"run{len(self.started) + 1}"
        run.mkdir()
        daemon = start_daemon(config, self.port, run, env)
        self.started.append(daemon)
        daemon.wait_ready(timeout=30)
        return daemon

    def close(self) -> None:
        for daemon in self.started:
            if daemon.process.poll() is None:
                daemon.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    daemon.process.wait(timeout=10)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    started = Daemons(tmp_path)
    try:
        yield started
    finally:
        started.close()


def write_token(directory: Path) -> Path:
    path = directory / "token"
    path.write_text(TOKEN + "\n")
    return path


def e2e_config_head(
    directory: Path, port: int, sink_port: int, *, defaults: str, server: str = ""
) -> str:
    """The config of an end-to-end daemon up to ``targets:`` exclusive: ``daemon_yaml`` (the
    engine under test, a token file in ``directory``), ``server:`` settings and the ``team``
    notifier posting to the test's sink on ``sink_port``."""
    token, engine, state = write_token(directory), "poll_interval: 500ms", directory / "state"
    head = daemon_yaml(port, state, token_file=token, docker=engine, defaults=defaults)
    settings = f"server: {{{server}}}\n" if server else ""
    return f"""\
{head}{settings}notify:
  - {{name: team, url: "json://127.0.0.1:{sink_port}/hook"}}
"""


def notifications(requests: list[Any]) -> list[dict[str, Any]]:
    """The JSON bodies the notifier endpoint ``/hook`` received, in order."""
    return [r.json() for r in requests if r.path == "/hook"]


# --------------------------------------------------------------------------- a release dir


class ReleaseApp(BaseHTTPRequestHandler):
    """An app whose behaviour is the ``mode`` file of the release ``current`` points to."""

    root: Path

    def do_GET(self) -> None:
        try:
            mode = (self.root / "current" / "mode").read_text().strip()
        except OSError:
            mode = "missing"
        body = json.dumps({"mode": mode}).encode()
        self.send_response(200 if mode == "ok" else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@dataclass
class ReleaseDir:
    """``root/releases/{v1,v2}`` (v1 answers 200, v2 500) and the ``current`` link."""

    root: Path
    port: int

    def deploy(self, version: str) -> None:
        """A deploy script's atomic switch of ``current``."""
        temporary = self.root / "current.deploy"
        temporary.symlink_to(self.root / "releases" / version)
        temporary.replace(self.root / "current")

    def running(self) -> str:
        return (self.root / "current").resolve().name


@pytest.fixture
def release_dir(tmp_path: Path) -> Iterator[ReleaseDir]:
    root = tmp_path / "app"
    for version, mode in (("v1", "ok"), ("v2", "500")):
        (root / "releases" / version).mkdir(parents=True)
        (root / "releases" / version / "mode").write_text(mode)
    (root / "current").symlink_to(root / "releases" / "v1")
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("App", (ReleaseApp,), {"root": root}))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ReleaseDir(root, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- a container


@dataclass
class AppDeployment:
    """One app container deployed the way a user's script does it: ``docker rm -f`` then
    ``docker run`` with the same settings every time, only the image changing (docker-py with
    exactly the arguments ``tests.support.images.run_app`` passes)."""

    client: Any
    name: str
    port: int
    network: str
    volume: str
    settings: dict[str, Any]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, image: str) -> None:
        """The first deploy, with this deployment's settings; returns once the app answers."""
        run_app(
            self.client,
            image,
            self.name,
            environment=self.settings["environment"],
            labels=self.settings["labels"],
            **self.settings["extra"],
        )

    def redeploy(self, image: str) -> None:
        with contextlib.suppress(NotFound):
            self.client.api.remove_container(self.name, force=True)
        self.client.containers.run(
            image,
            name=self.name,
            detach=True,
            environment=self.settings["environment"],
            labels=docker_labels(**self.settings["labels"]),
            **self.settings["extra"],
        )

    def inspect(self) -> dict[str, Any]:
        attrs: dict[str, Any] = self.client.api.inspect_container(self.name)
        return attrs

    def cleanup(self) -> None:
        for container in self.client.containers.list(all=True, filters={"name": self.name}):
            if container.name == self.name or container.name.startswith(f"{self.name}-wd-"):
                with contextlib.suppress(NotFound, APIError):
                    container.remove(force=True)
        with contextlib.suppress(NotFound, APIError):
            self.client.api.remove_volume(self.volume, force=True)
        with contextlib.suppress(NotFound, APIError):
            self.client.api.remove_network(self.network)


@pytest.fixture
def app_deployment(docker_engine: Any) -> Iterator[AppDeployment]:
    """Settings for an app with a named volume, a user network with an alias, env, labels, a
    port on 127.0.0.1, a restart policy, its own healthcheck, a user and a working dir."""
    client = docker_engine
    network = unique_name("wdt-e2e-net")
    volume = unique_name("wdt-e2e-vol")
    client.networks.create(network, driver="bridge", labels=docker_labels())
    client.volumes.create(volume, labels=docker_labels())
    port = free_port()
    endpoint = client.api.create_endpoint_config(aliases=["shop-api"])
    second = 1_000_000_000
    settings: dict[str, Any] = {
        "environment": {"GREETING": "hello world", "APP_SLOW_SECONDS": "1"},
        "labels": {"team": "payments", "tier": "web"},
        "extra": {
            "ports": {"8080/tcp": ("127.0.0.1", port)},
            "volumes": {volume: {"bind": "/data", "mode": "rw"}},
            "network": network,
            "networking_config": {network: endpoint},
            "restart_policy": {"Name": "unless-stopped"},
            "healthcheck": {
                "test": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/cgi-bin/health"],
                "interval": second,
                "timeout": second,
                "retries": 2,
            },
            "user": "65534:65534",
            "working_dir": "/www",
        },
    }
    deployment = AppDeployment(client, unique_name("wdt-e2e-app"), port, network, volume, settings)
    try:
        yield deployment
    finally:
        deployment.cleanup()


def comparable(attrs: dict[str, Any]) -> dict[str, Any]:
    """The settings a restore must bring back, as the issue lists them."""
    config, host = attrs["Config"], attrs["HostConfig"]
    own_alias = attrs["Id"][:12]  # the engine's per-container alias, not a user setting
    return {
        "name": attrs["Name"],
        "image": config["Image"],
        "cmd": config["Cmd"],
        "entrypoint": config["Entrypoint"],
        "env": sorted(config["Env"]),
        "labels": config["Labels"],
        "port_bindings": host["PortBindings"],
        "mounts": sorted(
            (m["Type"], m.get("Name") or m["Source"], m["Destination"], m["RW"])
            for m in attrs["Mounts"]
        ),
        "networks": {
            net: sorted(a for a in endpoint.get("Aliases") or [] if a != own_alias)
            for net, endpoint in attrs["NetworkSettings"]["Networks"].items()
        },
        "restart_policy": host["RestartPolicy"],
        "healthcheck": config.get("Healthcheck"),
        "user": config["User"],
        "workdir": config["WorkingDir"],
    }
