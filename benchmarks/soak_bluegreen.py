"""The soak's blue-green target: a container behind a real HAProxy (Debian's 2.6), deployed
only through ``watchdogd deploy`` (docs/blue-green.md).

* HAProxy: ``tests.support.haproxy``'s config (a frontend, backend ``app`` with one static
  server ``blue`` checked every 200 ms, the Runtime API, the request log to watchdogd's
  socket). :meth:`BlueGreenTarget.restart_haproxy` stops and starts it from that file: every
  weight and dynamic server is forgotten, and watchdogd's reconciler must put them back.
* Releases are images derived from the test app, one per deploy, whose environment carries
  the label (``SOAK_RELEASE`` and ``APP_VERSION``, so that every answer through HAProxy says
  which release served it: ``X-App-Version``). A deploy gives watchdogd the image; green is
  started from blue's configuration, without blue's own variables.
* Bad releases: the usual faults, which the pre-checks must catch before any user reaches
  green (the 500s, 3 s latency, failed login, crash loop, unhealthy), and ``fails under
  traffic``: a good image that the soak breaks (``/tmp/mode`` set to 500) as soon as its bake
  starts, which the bake must catch and switch back.

``pairs`` samples which of the app's containers run, and whether a deploy is open, so that
``soak_bluegreen_invariants`` can tell two running releases with a record from two without.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from common import TOKEN
from docker.errors import APIError, NotFound
from mttr_app import HEALTH_INTERVAL, HEALTH_TEST, LABEL, Fault, app_checks
from soak_bluegreen_invariants import BgDeploy, PairSample
from soak_targets import RUN_LABEL, label_of_env

from tests.support.haproxy import HAProxyServer, StaticServer, render_config
from tests.support.images import set_mode

ROOT = Path(__file__).resolve().parent.parent
# A release that passes every pre-check and breaks once users reach it (the soak breaks it).
FAILS_UNDER_TRAFFIC = Fault("fails under traffic", "v1")
PRE_CHECK_FAULTS = ("500s", "latency 3s", "auth failure", "crash loop", "unhealthy")
TRAFFIC_BAKE = "20s"


@dataclass
class BlueGreenTarget:
    client: docker.DockerClient
    refs: dict[str, str]
    container: str
    port: int  # blue's first port; later releases get one from the engine
    workdir: Path
    run_id: str
    name: str = "bg"
    faults: tuple[str, ...] = (
        *PRE_CHECK_FAULTS,
        FAILS_UNDER_TRAFFIC.name,
        FAILS_UNDER_TRAFFIC.name,
    )
    daemon_url: str = ""
    images: list[str] = field(default_factory=list)
    haproxy: HAProxyServer | None = None

    @property
    def url(self) -> str:
        assert self.haproxy is not None
        return self.haproxy.url

    @property
    def repo(self) -> str:
        return f"watchdogd-soak/bg-{self.run_id}"

    # --- the stage -------------------------------------------------------------------------

    def start(self, haproxy_port: int) -> None:
        """Blue (``good-0``) on ``port``, and HAProxy in front of it."""
        image = self._image("good-0", None)
        self.client.containers.run(
            image,
            name=self.container,
            detach=True,
            labels={LABEL: "1", RUN_LABEL: self.run_id},
            ports={"8080/tcp": ("127.0.0.1", self.port)},
            restart_policy={"Name": "always"},
            healthcheck={
                "test": HEALTH_TEST,
                "interval": int(HEALTH_INTERVAL * 1e9),
                "timeout": int(1e9),
                "retries": 2,
            },
        )
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        home = self.workdir / "haproxy"
        home.mkdir()
        proxy = HAProxyServer(
            binary=binary,
            workdir=home,
            port=haproxy_port,
            backend="app",
            admin_socket=home / "admin.sock",
            log_socket=home / "log.sock",
            config_path=home / "haproxy.cfg",
        )
        proxy.config_path.write_text(
            render_config(
                admin_socket=proxy.admin_socket,
                log_socket=proxy.log_socket,
                port=haproxy_port,
                backend="app",
                servers=[StaticServer("blue", self.port, check=True)],
            )
        )
        proxy.start()
        self.haproxy = proxy

    def restart_haproxy(self) -> None:
        assert self.haproxy is not None
        self.haproxy.restart()

    def close(self) -> None:
        if self.haproxy is not None:
            self.haproxy.stop()
        for name in self.app_containers(running_only=False):
            with contextlib.suppress(NotFound, APIError):
                self.client.api.remove_container(name, force=True, v=True)
        for image in self.images:
            with contextlib.suppress(NotFound, APIError):
                self.client.images.remove(image, force=True)

    # --- releases --------------------------------------------------------------------------

    def _image(self, label: str, fault: Fault | None) -> str:
        """An image of the release ``label``: the test app, bad with ``fault``."""
        base = self.refs[fault.image if fault else "v1"]
        env = {"SOAK_RELEASE": label, "APP_VERSION": label, **(fault.env if fault else {})}
        lines = "".join(f'ENV {key}="{value}"\n' for key, value in sorted(env.items()))
        ref = f"{self.repo}:{label}"
        dockerfile = f"FROM {base}\n{lines}"
        self.client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=ref, labels={LABEL: "1"}, rm=True
        )
        self.images.append(ref)
        return ref

    def deploy(self, label: str, fault: Fault | None, how: str = "") -> str:
        """``watchdogd deploy bg IMAGE --detach``, as a user runs it."""
        image = self._image(label, None if fault is FAILS_UNDER_TRAFFIC else fault)
        command = [sys.executable, "-m", "watchdogd", "deploy", self.name, image, "--detach"]
        command += ["--url", self.daemon_url, "--token", TOKEN]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"watchdogd deploy exited {result.returncode}: "
                f"{(result.stdout + result.stderr).strip()[-600:]}"
            )
        return "watchdogd deploy"

    def break_green(self, green: str) -> None:
        """The release fails under real load: every answer 500 from now on."""
        set_mode(self.client.containers.get(green), "500")

    def running(self) -> str | None:
        try:
            attrs = self.client.api.inspect_container(self.container)
        except NotFound:
            return None
        return label_of_env(attrs["Config"].get("Env"))

    def restart(self) -> str | None:
        """``docker restart`` of what serves: a promoted release moves to a new host port,
        which HAProxy's server must follow (``deploy/follow.py``)."""
        self.client.api.restart(self.container, timeout=2)
        return "docker restart"

    def stop_by_hand(self) -> str | None:
        """``docker stop`` of what serves: HAProxy finds its server down meanwhile."""
        self.client.api.stop(self.container, timeout=2)
        return "docker stop"

    def start_by_hand(self) -> None:
        self.client.api.start(self.container)

    def app_containers(self, *, running_only: bool = True) -> list[str]:
        """Blue's name and every green (``<blue>-green-<random>``)."""
        found = self.client.api.containers(all=not running_only, filters={"name": self.container})
        names = [str(c["Names"][0]).lstrip("/") for c in found]
        return sorted(n for n in names if n.startswith(self.container))

    def config(self) -> str:
        assert self.haproxy is not None
        front = self.haproxy.url
        checks = app_checks(front, health=False)
        return f"""\
    container: {self.container}
{checks}    traffic:
      haproxy: {{socket: {self.haproxy.admin_socket}, backend: app,
                log_socket: {self.haproxy.log_socket}}}
      strategy: blue_green
      upstream: {{port: 8080}}
      pre_checks: {{samples: 3, interval: 300ms, max_latency: 1s, timeout: 20s}}
      min_requests: 20
      drain_timeout: 2s
      bake_time: {TRAFFIC_BAKE}
"""


def deploy_view(api: Any, target: str) -> dict[str, Any] | None:
    """The newest deploy of ``target`` as the API shows it; None when unreachable or none."""
    response = api("GET", f"/api/v1/targets/{target}/deploy")
    if response is None or response.status_code != 200:
        return None
    found: dict[str, Any] | None = response.json().get("deploy")
    return found


def pair_sample(target: BlueGreenTarget, api: Any) -> PairSample | None:
    """Which of the app's containers run, and whether a deploy is open; None when either the
    engine or the daemon cannot say."""
    try:
        running = target.app_containers()
    except (APIError, docker.errors.DockerException):
        return None
    view = deploy_view(api, target.name)
    response = api("GET", f"/api/v1/targets/{target.name}")
    if response is None:
        return None
    open_deploy = view is not None and not view.get("final", True)
    return PairSample(time.time(), tuple(running), open_deploy)


def read_deploys(db: Any, target: str, repo: str) -> list[BgDeploy]:
    """Every deploy of ``target`` from the store, by the label of its image."""
    rows = db.execute(
        "SELECT image, stage, started_at, ended_at, reason FROM deploys WHERE target = ? "
        "ORDER BY started_at",
        (target,),
    ).fetchall()
    return [
        BgDeploy(image.removeprefix(f"{repo}:"), stage, started, ended, reason or "")
        for image, stage, started, ended, reason in rows
    ]
