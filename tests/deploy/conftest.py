"""Blue-green deploys against the real parts: HAProxy (``tests.support.haproxy``), the Docker
engine, the daemon process, and a load client that counts every response by status and by the
release that served it (the app's ``X-App-Version`` header).

The stage: blue is the test app (v1) published on a free 127.0.0.1 port; HAProxy's backend
``app`` has one static server ``blue`` pointing at it; the daemon's target ``shop`` has a
``traffic:`` section naming HAProxy's admin socket. Images for releases that pass the
pre-checks are derived from v1 (``derived_image``), so that each has its own image ID (the
quarantine is keyed by image) and its own version header.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from docker.errors import APIError, NotFound

from tests.e2e.conftest import Daemons, daemons, write_token  # noqa: F401 - the fixture
from tests.support import TEST_LABEL, docker_labels, unique_name
from tests.support.daemon import TOKEN, DaemonProcess
from tests.support.haproxy import HAProxyFactory, HAProxyServer, StaticServer, haproxy_factory  # noqa: F401
from tests.support.images import AppImages, run_app, wait_health

TARGET = "shop"


# --------------------------------------------------------------------------- the load client


@dataclass
class Response:
    at: float  # time.time() of the answer
    status: int  # 0: no response (connection error, timeout)
    version: str
    sent: float = 0.0  # time.time() of the request


@dataclass
class LoadClient:
    """About ``rate`` requests a second through HAProxy, each recorded."""

    url: str
    rate: float = 100.0
    responses: list[Response] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> LoadClient:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        gap = 1.0 / self.rate
        with httpx.Client(trust_env=False, timeout=5.0) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                sent = time.time()
                try:
                    answer = client.get(self.url)
                    version = answer.headers.get("X-App-Version", "")
                    record = Response(time.time(), answer.status_code, version, sent)
                except httpx.HTTPError:
                    record = Response(time.time(), 0, "", sent)
                self.responses.append(record)
                self._stop.wait(max(0.0, gap - (time.monotonic() - began)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def by_version(self) -> Counter[str]:
        return Counter(r.version for r in self.responses if r.status)

    def failed(self, since: float = 0.0) -> list[Response]:
        return [r for r in self.responses if r.at >= since and not 0 < r.status < 500]

    def served_by(self, version: str) -> list[Response]:
        return [r for r in self.responses if r.version == version]


@pytest.fixture
def load_clients() -> Iterator[list[LoadClient]]:
    started: list[LoadClient] = []
    yield started
    for client in started:
        client.stop()


# --------------------------------------------------------------------------- the stage


@dataclass
class Stage:
    docker: Any
    images: AppImages
    blue: str
    blue_port: int
    haproxy: HAProxyServer
    daemons: Daemons
    tmp: Path
    daemon: DaemonProcess | None = None
    derived: list[str] = field(default_factory=list)

    @property
    def frontend(self) -> str:
        return f"{self.haproxy.url}/cgi-bin/api"

    def config(
        self,
        *,
        bake_time: str = "4s",
        log_socket: bool = False,
        min_requests: int = 20,
        strategy: str = "strategy: blue_green",
    ) -> Path:
        """The daemon's config; ``strategy`` is YAML for the traffic section (indented six
        spaces after its first line): a canary's strategy, steps and gates."""
        path = self.tmp / "watchdogd.yaml"
        log_line = f", log_socket: {self.haproxy.log_socket}" if log_socket else ""
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        path.write_text(f"""\
listen: 127.0.0.1:{self.daemons.port}
api_token_file: {write_token(self.tmp)}
state_dir: {self.tmp / "state"}
log: {{format: json, level: info}}
docker: {{host: "{host}", poll_interval: 500ms}}
server: {{shutdown_timeout: 5s}}
defaults: {{window: 1m, bake_time: 1s, cooldown: 5m, stop_timeout: 1s}}
targets:
  - name: {TARGET}
    container: {self.blue}
    checks:
      - {{name: api, type: http, url: "{self.haproxy.url}/cgi-bin/api",
          interval: 500ms, timeout: 2s}}
      - name: login
        type: auth_flow
        interval: 2s
        steps:
          - {{name: login, method: POST, url: "{self.haproxy.url}/cgi-bin/login",
              body: "user=probe", extract: {{token: access_token}}}}
          - {{name: me, url: "{self.haproxy.url}/cgi-bin/me",
              headers: {{Authorization: "Bearer {{token}}"}}}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
    traffic:
      haproxy: {{socket: {self.haproxy.admin_socket}, backend: app{log_line}}}
      {strategy}
      upstream: {{port: 8080}}
      pre_checks: {{samples: 3, interval: 200ms, max_latency: 1s, timeout: 30s}}
      min_requests: {min_requests}
      drain_timeout: 2s
      bake_time: {bake_time}
""")
        return path

    def start_daemon(self, config: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        self.daemon = self.daemons.start(config, env)
        self.daemon.wait_state(TARGET, "healthy", timeout=60)
        return self.daemon

    def derived_image(self, version: str, *, mode: str = "ok", slow: float | None = None) -> str:
        """An image of v1 that reports ``version`` and runs in ``mode`` by default (``slow``:
        the delay of mode ``slow``, in seconds)."""
        ref = f"{self.images.repo}:{version}"
        delay = f" APP_SLOW_SECONDS={slow}" if slow is not None else ""
        dockerfile = f"FROM {self.images.v1}\nENV APP_VERSION={version} APP_MODE={mode}{delay}\n"
        self.docker.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=ref, labels={TEST_LABEL: "1"}, rm=True
        )
        self.derived.append(ref)
        return ref

    def deploy(self, image: str, *, detach: bool = False) -> subprocess.CompletedProcess[str]:
        """``watchdogd deploy`` as a user runs it."""
        assert self.daemon is not None
        command = [sys.executable, "-m", "watchdogd", "deploy", TARGET, image]
        command += ["--url", self.daemon.url, "--token", TOKEN]
        if detach:
            command.append("--detach")
        return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)

    def deploy_record(self) -> dict[str, Any]:
        assert self.daemon is not None
        record: dict[str, Any] = self.daemon.get(f"/api/v1/targets/{TARGET}/deploy").json()
        return record["deploy"] or {}

    def wait_stage(self, stage: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.deploy_record()
            if last.get("stage") == stage:
                return last
            time.sleep(0.1)
        raise AssertionError(f"deploy never reached {stage}: {last}")

    def app_containers(self) -> list[str]:
        """Names of every container of the stage's app, running or not."""
        found = self.docker.containers.list(all=True, filters={"name": self.blue})
        return sorted(c.name for c in found if c.name.startswith(self.blue))

    def servers(self) -> dict[str, dict[str, str]]:
        """HAProxy's view of backend ``app``: server -> its ``show stat`` fields."""
        text = self.haproxy.command("show stat app 4 -1")
        lines = [line for line in text.splitlines() if line.strip()]
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:]]
        return {row["svname"]: row for row in rows if row["svname"] not in ("BACKEND",)}

    def cleanup(self) -> None:
        for name in self.app_containers():
            with contextlib.suppress(NotFound, APIError):
                self.docker.api.remove_container(name, force=True)
        for ref in self.derived:
            with contextlib.suppress(NotFound, APIError):
                self.docker.images.remove(ref)


@pytest.fixture
def stage(
    docker_engine: Any,
    app_images: AppImages,
    haproxy_factory: HAProxyFactory,  # noqa: F811
    daemons: Daemons,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Stage]:
    name = unique_name("wdt-bg")
    app = run_app(docker_engine, app_images.v1, name, labels={})
    wait_health(app.container, "healthy", timeout=30)
    proxy = haproxy_factory([StaticServer("blue", app.port)])
    built = Stage(docker_engine, app_images, name, app.port, proxy, daemons, tmp_path)
    try:
        yield built
    finally:
        built.cleanup()


__all__ = ["LoadClient", "Stage", "docker_labels"]
