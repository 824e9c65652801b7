"""Blue-green switch back against today's re-create: what users lose to one bad release.

Same app, same load, same run. The app is the integration tests' image (``mttr_app``), behind
a real HAProxy 2.6 (a static server ``blue`` on the app's published port, the request log on
a Unix socket), with a user load of ~100 requests/s through HAProxy that records, per request,
when it was sent, its status and the release that answered (``X-App-Version``).

**(a) blue-green**: the target has ``traffic:``; ``watchdogd deploy`` starts a release that
passes its pre-checks; once users are on it, it starts answering 500 (``docker exec`` sets
its mode: a fault that shows only under real traffic). watchdogd detects it from HAProxy's
request log (the default traffic gate, error rate above 1 %) and switches back.
**(a') pre-promotion catch**: ``watchdogd deploy`` of image v2 (500 on every endpoint).
**(b) re-create**: the same target without ``traffic:``; a deploy script replaces the
container (``docker rm -f`` + ``docker run`` of v2 on the same port); watchdogd detects it with
an HTTP check through HAProxy (300 ms interval, error rate above 1 %) and re-creates v1.

Figures, from the load client's records: *failed per incident* counts failed requests (5xx or
no answer) from the fault to the end; *failed after detection* those sent after watchdogd's
detection (a); the deploy's ``detected_at``; (b): the ``incident_started`` audit event);
*detection to previous release serving all traffic* is from detection to the sending of the
last request that v1 did not answer well (after it, v1 served everything); the load is 4
independent users, so one slow request holds up only its own user (resolution ~10 ms).
(c) Swarm's own rollback is not run here: a Swarm service has no second release to switch to;
``bench_mttr.py`` measures its update rollback (1.4 s from detection on this machine).

Targets (issue #14): switch back <= 50 ms after detection; 0 failed requests after detection;
a release caught by the pre-promotion checks costs users 0 failed requests.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
from common import TOKEN, DaemonProc, Row, free_port
from mttr_app import LABEL, build_images, remove_images, remove_labelled, run_container

from watchdogd.traffic.log_line import LOG_FORMAT

RATE = 100.0
USERS = 4


@dataclass
class Sample:
    sent: float
    status: int
    version: str


class Load:
    """``RATE`` requests a second from ``USERS`` independent users (threads), so that one slow
    request holds up only its own user, and the moment traffic moves shows to ~10 ms."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[Sample] = []
        self.halt = threading.Event()
        self._threads = [threading.Thread(target=self._user, daemon=True) for _ in range(USERS)]

    def start(self) -> None:
        for index, thread in enumerate(self._threads):
            thread.start()
            time.sleep(1 / RATE * (index + 1) / USERS)  # spread the users out

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _user(self) -> None:
        gap = USERS / RATE
        with httpx.Client(trust_env=False, timeout=5.0) as client:
            while not self.halt.is_set():
                sent = time.time()
                try:
                    answer = client.get(self.url)
                    version = answer.headers.get("X-App-Version", "")
                    sample = Sample(sent, answer.status_code, version)
                except httpx.HTTPError:
                    sample = Sample(sent, 0, "")
                self.samples.append(sample)
                self.halt.wait(max(0.0, gap - (time.time() - sent)))

    def failed(self, since: float) -> int:
        return sum(1 for s in self.samples if s.sent >= since and not 0 < s.status < 500)

    def last_elsewhere(self, good: str, since: float) -> float | None:
        """When the last request was sent that ``good`` did not answer well (from ``since``):
        after it, the previous release served all traffic."""
        return max(
            (
                s.sent
                for s in self.samples
                if s.sent >= since and (s.version != good or s.status >= 500)
            ),
            default=None,
        )


class HAProxy:
    def __init__(self, workdir: Path, app_port: int) -> None:
        self.port = free_port()
        self.admin = workdir / "admin.sock"
        self.log_socket = workdir / "log.sock"
        config = workdir / "haproxy.cfg"
        config.write_text(f"""\
global
    stats socket {self.admin} mode 600 level admin
    log {self.log_socket} local0 info
defaults
    mode http
    log global
    log-format "{LOG_FORMAT}"
    option dontlognull
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend web
    bind 127.0.0.1:{self.port}
    default_backend app
backend app
    balance roundrobin
    server blue 127.0.0.1:{app_port} weight 100
""")
        self.proc = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config)],
            stdout=(workdir / "haproxy.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not self.admin.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cgi-bin/api"

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def _config(workdir: Path, port: int, container: str, proxy: HAProxy, traffic: bool) -> Path:
    token = workdir / "token"
    token.write_text(TOKEN + "\n")
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    section = (
        f"""
    traffic:
      haproxy: {{socket: {proxy.admin}, backend: app, log_socket: {proxy.log_socket}}}
      upstream: {{port: 8080}}
      pre_checks: {{samples: 3, interval: 200ms, timeout: 30s}}
      bake_time: 60s
      drain_timeout: 2s
"""
        if traffic
        else ""
    )
    path = workdir / "watchdogd.yaml"
    path.write_text(f"""\
listen: 127.0.0.1:{port}
api_token_file: {token}
state_dir: {workdir / "state"}
docker: {{host: "{host}", poll_interval: 500ms}}
log: {{format: json, level: info}}
defaults: {{window: 1m, bake_time: 1s, cooldown: 5m, stop_timeout: 1s}}
targets:
  - name: shop
    container: {container}
    checks:
      - {{name: api, type: http, url: "{proxy.url}", interval: 300ms, timeout: 1s}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
{section}""")
    return path


@dataclass
class Outcome:
    failed_total: int
    failed_after: int
    back_ms: float | None
    switch_ms: float | None = None  # only when green's traffic gate detected it


def _stage(client: Any, refs: dict[str, str], workdir: Path, traffic: bool) -> tuple[Any, ...]:
    name = f"bench-bg-{os.getpid()}-{time.monotonic_ns() % 10**8}"
    app_port = free_port()
    run_container(client, name, refs["v1"], app_port)
    _wait(
        lambda: (
            client.containers.get(name).attrs["State"].get("Health", {}).get("Status") == "healthy"
        )
    )
    proxy = HAProxy(workdir, app_port)
    port = free_port()
    daemon = DaemonProc(
        _config(workdir, port, name, proxy, traffic), port, log=workdir / "daemon.log"
    )
    daemon.wait_ready()
    daemon.wait_state("shop", "healthy")
    load = Load(proxy.url)
    load.start()
    time.sleep(1.0)
    return name, proxy, daemon, load


def _wait(ready: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.1)


def _deploy_record(daemon: DaemonProc) -> dict[str, Any]:
    return daemon.http.get("/api/v1/targets/shop/deploy").json()["deploy"] or {}


def _deploy(daemon: DaemonProc, image: str) -> None:
    answer = daemon.http.post(
        "/api/v1/targets/shop/deploy",
        json={"image": image},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    answer.raise_for_status()


def _blue_green(client: Any, refs: dict[str, str], tag: str) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bench-bg-") as tmp:
        name, proxy, daemon, load = _stage(client, refs, Path(tmp), traffic=True)
        try:
            _deploy(daemon, tag)
            _wait(lambda: _deploy_record(daemon).get("stage") == "baking")
            time.sleep(1.0)
            green = _deploy_record(daemon)["green"]
            broke = time.time()
            client.containers.get(green).exec_run(["sh", "-c", "echo 500 > /tmp/mode"])
            _wait(lambda: _deploy_record(daemon).get("stage") == "rolled_back")
            _wait(lambda: any(e["kind"] == "incident_started" for e in daemon.events()))
            time.sleep(1.0)
            numbers = _deploy_record(daemon)["numbers"]
            # Green's traffic gate, or the target's own gate on its check through HAProxy
            # (which sees green too), whichever is sure first: both switch back.
            started = [e for e in daemon.events() if e["kind"] == "incident_started"]
            detected = float(numbers.get("detected_at") or started[-1]["at"])
            back = load.last_elsewhere("v1", broke)
            return Outcome(
                failed_total=load.failed(broke),
                failed_after=load.failed(detected),
                back_ms=None if back is None else max(0.0, back - detected) * 1000,
                switch_ms=numbers.get("switch_back_ms"),
            )
        finally:
            _teardown(client, name, proxy, daemon, load)


def _caught(client: Any, refs: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-bg-") as tmp:
        name, proxy, daemon, load = _stage(client, refs, Path(tmp), traffic=True)
        try:
            started = time.time()
            _deploy(daemon, refs["v2"])
            _wait(lambda: _deploy_record(daemon).get("stage") == "aborted")
            return load.failed(started)
        finally:
            _teardown(client, name, proxy, daemon, load)


def _recreate(client: Any, refs: dict[str, str]) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bench-bg-") as tmp:
        name, proxy, daemon, load = _stage(client, refs, Path(tmp), traffic=False)
        try:
            port = client.containers.get(name).attrs["HostConfig"]["PortBindings"]["8080/tcp"][0][
                "HostPort"
            ]
            broke = time.time()
            client.api.remove_container(name, force=True)
            run_container(client, name, refs["v2"], int(port))
            _wait(lambda: any(e["kind"] == "incident_finished" for e in daemon.events()), 90)
            time.sleep(1.0)
            started = [e for e in daemon.events() if e["kind"] == "incident_started"]
            detected = float(started[-1]["at"])
            back = load.last_elsewhere("v1", broke)
            return Outcome(
                failed_total=load.failed(broke),
                failed_after=load.failed(detected),
                back_ms=None if back is None else max(0.0, back - detected) * 1000,
            )
        finally:
            _teardown(client, name, proxy, daemon, load)


def _teardown(client: Any, name: str, proxy: HAProxy, daemon: DaemonProc, load: Load) -> None:
    load.halt.set()
    load.join(timeout=10)
    daemon.stop()
    proxy.stop()
    for container in client.containers.list(all=True, filters={"name": name}):
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)


def _derived(client: Any, refs: dict[str, str], version: str) -> str:
    ref = refs["v1"].rsplit(":", 1)[0] + f":{version}"
    dockerfile = f"FROM {refs['v1']}\nENV APP_VERSION={version}\n"
    client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=ref, labels={LABEL: "1"}, rm=True
    )
    return ref


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def run(quick: bool) -> list[Row]:
    client = docker.from_env()
    refs = build_images(client)
    runs = 1 if quick else 3
    extra: list[str] = []
    try:
        green: list[Outcome] = []
        for index in range(runs):
            tag = _derived(client, refs, f"bg{index}")
            extra.append(tag)
            green.append(_blue_green(client, refs, tag))
        caught = [_caught(client, refs) for _ in range(runs)]
        recreate = [_recreate(client, refs) for _ in range(runs)]
    finally:
        remove_labelled(client, f"{LABEL}=1")
        remove_images(client, refs | {t: t for t in extra})
    back = _median([o.back_ms for o in green])
    after = max(o.failed_after for o in green)
    name = "re-create (today)"
    return [
        Row(
            "bluegreen",
            f"failed requests per incident (median of {runs})",
            _median([float(o.failed_total) for o in green]),
            "requests",
            name,
            _median([float(o.failed_total) for o in recreate]),
        ),
        Row(
            "bluegreen",
            "failed requests sent after detection (worst run)",
            float(after),
            "requests",
            name,
            float(max(o.failed_after for o in recreate)),
            target="0",
            passed=after == 0,
        ),
        Row(
            "bluegreen",
            "detection -> previous release serving all traffic",
            back,
            "ms",
            name,
            _median([o.back_ms for o in recreate]),
            target="<= 50 ms",
            passed=back is not None and back <= 50,
        ),
        Row(
            "bluegreen",
            "switch back applied and verified (drain included)",
            _median([o.switch_ms for o in green]),
            "ms",
            note="deploy numbers switch_back_ms",
        ),
        Row(
            "bluegreen",
            "release caught by pre-checks: failed requests (worst run)",
            float(max(caught)),
            "requests",
            name,
            _median([float(o.failed_total) for o in recreate]),
            target="0",
            passed=max(caught) == 0,
        ),
        Row("bluegreen", "Swarm's own rollback", None, "", note="not run: see module docstring"),
    ]


if __name__ == "__main__":
    from common import print_table

    print_table(run("--quick" in sys.argv))
