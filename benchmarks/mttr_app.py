"""The MTTR benchmark's app: the test images, the faults, and an outside observer.

The images are the integration tests' app (``tests/images/app``: busybox httpd FROM scratch,
see ``tests/support/images.py`` for its URLs and modes), built here under
``watchdogd-bench/app-<pid>:v1|v2|v3``. A fault is a new release deployed over the good one:

==============  =======================================  =====================================
fault           release                                  what breaks
==============  =======================================  =====================================
``500s``        image v2                                 every endpoint answers 500
``latency 3s``  image v3                                 /api and /login answer after 3 s
``auth``        v1 with ``APP_MODE=authfail``            /login answers 401; /health is fine
``crash loop``  v1 with ``APP_PORT=none``                httpd exits at once, restarted again
``unhealthy``   v1 with ``APP_MODE=unhealthy``           /health answers 503 (HEALTHCHECK)
==============  =======================================  =====================================

:class:`ServingWatch` polls ``/cgi-bin/version`` every 50 ms from outside and records when the
good release (version v1, mode ok, from the ``X-App-Version``/``X-App-Mode`` headers) answers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
from docker.errors import APIError, NotFound

ROOT = Path(__file__).resolve().parent.parent
APP_CONTEXT = ROOT / "tests" / "images" / "app"
REPO = f"watchdogd-bench/app-{os.getpid()}"
LABEL = "watchdogd.bench"
HEALTH_TEST = ["CMD-SHELL", "wget -q -O- http://127.0.0.1:8080/cgi-bin/health || exit 1"]
HEALTH_INTERVAL = 2.0  # the setting for the Swarm side; the same on ours


@dataclass(frozen=True)
class Fault:
    name: str
    image: str  # v1, v2 or v3
    env: dict[str, str] = field(default_factory=dict)
    hard_down: bool = False  # every request fails: the "detected in 3 s" target applies


FAULTS = (
    Fault("500s", "v2", hard_down=True),
    Fault("latency 3s", "v3"),
    Fault("auth failure", "v1", {"APP_MODE": "authfail"}),
    Fault("crash loop", "v1", {"APP_PORT": "none"}, hard_down=True),
    Fault("unhealthy", "v1", {"APP_MODE": "unhealthy"}),
)


def app_checks(
    url: str, *, latency_evidence: str = "", unhealthy: str = "", health: bool = True
) -> str:
    """The checks and gates an operator would give this app on ``url`` (a target's YAML from
    ``checks:`` on): http, auth_flow and container health, each gated. ``latency_evidence``
    and ``unhealthy`` add settings to the latency and the unhealthy gate (``min_samples: 3``,
    ``for: 8s``); without ``health`` no container health (a target whose releases HAProxy
    switches between: its checks go through HAProxy's frontend)."""
    latency = f", {latency_evidence}" if latency_evidence else ""
    health_check = "      - {name: health, type: container_health}\n" if health else ""
    health_gate = (
        f"      - {{check: health, metric: unhealthy{', ' + unhealthy if unhealthy else ''}}}\n"
        if health
        else ""
    )
    return f"""\
    checks:
{health_check}      - {{name: api, type: http, url: "{url}/cgi-bin/api", interval: 1s, timeout: 1s}}
      - name: login
        type: auth_flow
        interval: 1s
        timeout: 2s
        steps:
          - {{name: login, method: POST, url: "{url}/cgi-bin/login",
             json: {{user: probe, password: secret}}, extract: {{token: access_token}}}}
          - {{name: me, url: "{url}/cgi-bin/me", headers: {{Authorization: "Bearer {{token}}"}}}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
      - {{check: api, metric: latency_p95, above: 1s{latency}}}
      - {{check: login, metric: failure_rate, above: 1%}}
{health_gate}"""


def build_images(client: docker.DockerClient) -> dict[str, str]:
    """``{"v1": ref, ...}``; needs Debian's busybox-static."""
    busybox = Path("/bin/busybox").resolve()
    refs = {}
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        context = Path(tmp) / "app"
        shutil.copytree(APP_CONTEXT, context)
        shutil.copy2(busybox, context / "busybox")
        for script in [*(context / "www" / "cgi-bin").iterdir(), context / "app" / "entrypoint.sh"]:
            script.chmod(0o755)
        for version, mode in (("v1", "ok"), ("v2", "500"), ("v3", "slow")):
            ref = f"{REPO}:{version}"
            client.images.build(
                path=str(context),
                tag=ref,
                buildargs={"APP_VERSION": version, "APP_MODE": mode},
                labels={LABEL: "1"},
                rm=True,
                pull=False,
            )
            refs[version] = ref
    return refs


def remove_images(client: docker.DockerClient, refs: dict[str, str]) -> None:
    for ref in refs.values():
        with contextlib.suppress(NotFound, APIError):
            client.images.remove(ref)


def run_container(
    client: docker.DockerClient,
    name: str,
    image: str,
    port: int,
    *,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> Any:
    """``docker run -d --restart always -p 127.0.0.1:PORT:8080`` with a 2 s healthcheck."""
    return client.containers.run(
        image,
        name=name,
        detach=True,
        environment=env or {},
        labels={LABEL: "1", **(labels or {})},
        ports={"8080/tcp": ("127.0.0.1", port)},
        restart_policy={"Name": "always"},
        healthcheck={
            "test": HEALTH_TEST,
            "interval": int(HEALTH_INTERVAL * 1e9),
            "timeout": int(1e9),
            "retries": 2,
        },
    )


def labelled(client: docker.DockerClient, label: str) -> list[str]:
    """IDs of the containers carrying ``label`` (k=v), without inspecting each (which races
    with their removal)."""
    return [c["Id"] for c in client.api.containers(all=True, filters={"label": label})]


def remove_labelled(client: docker.DockerClient, label: str) -> None:
    for container in labelled(client, label):
        with contextlib.suppress(NotFound, APIError):
            client.api.remove_container(container, force=True)


def first_start(client: docker.DockerClient, labels: list[str], since: float) -> float | None:
    """Unix time of the first ``start`` event of a container carrying every ``k=v`` label."""
    events = client.events(
        since=int(since) - 1,
        until=int(time.time()) + 1,
        filters={"type": "container", "event": "start", "label": labels},
        decode=True,
    )
    times = [int(e["timeNano"]) / 1e9 for e in events if int(e["timeNano"]) / 1e9 >= since]
    return min(times) if times else None


def wait_first_start(
    client: docker.DockerClient, labels: list[str], since: float, timeout: float = 60.0
) -> float | None:
    """``first_start``, waiting for it up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = first_start(client, labels, since)
        if found is not None:
            return found
        time.sleep(0.2)
    return None


class ServingWatch(threading.Thread):
    """Polls ``http://127.0.0.1:PORT/cgi-bin/version`` every 50 ms; ``good_at`` lists the wall
    times of the answers from the good release."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/cgi-bin/version"
        self.good_at: list[float] = []
        self.bad_at: list[float] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while not self._halt.wait(0.05):
                try:
                    response = client.get(self.url, headers={"Connection": "close"})
                except httpx.HTTPError:
                    self.bad_at.append(time.time())
                    continue
                at = time.time()
                good = (
                    response.status_code == 200
                    and response.headers.get("X-App-Version") == "v1"
                    and response.headers.get("X-App-Mode") == "ok"
                )
                (self.good_at if good else self.bad_at).append(at)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def good_after(self, at: float) -> float | None:
        """The first good answer after ``at`` that the next one confirms (two in a row)."""
        for first, second in zip(self.good_at, self.good_at[1:], strict=False):
            if first > at and not any(first < bad < second for bad in self.bad_at):
                return first
        return None

    def wait_good(self, after: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.good_after(after)
            if found is not None:
                return found
            time.sleep(0.1)
        return None


@contextlib.contextmanager
def watching(port: int) -> Iterator[ServingWatch]:
    watch = ServingWatch(port)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()


def wait_serving(port: int, timeout: float = 30.0) -> None:
    """Until the good release answers on ``port``."""
    with watching(port) as watch:
        if watch.wait_good(0.0, timeout) is None:
            raise RuntimeError(f"nothing good answers on 127.0.0.1:{port} after {timeout} s")


def wait_healthy(client: docker.DockerClient, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(NotFound):
            state = client.api.inspect_container(name)["State"]
            if (state.get("Health") or {}).get("Status") == "healthy":
                return
        time.sleep(0.2)
    raise RuntimeError(f"{name} not healthy after {timeout} s")
