"""``watchdogd demo --traffic``: a blue-green deploy going wrong behind a real HAProxy, and
watchdogd switching users back, with no Docker engine.

Two local processes of the demo app play the releases: blue (v1, good) and green (v2, every
4th ``/api`` request fails). HAProxy (the machine's own binary) sends users to blue. The demo
then runs the traffic half of ``watchdogd deploy`` with the daemon's own parts: green is
checked directly (it passes: the fault shows only under real traffic), HAProxy's weights move
to green (``deploy.proxy`` over the Runtime API, blue kept on standby), green is judged on its
own requests from HAProxy's log (``traffic.log_receiver`` into ``deploy.windows``, the
deploy's default gate), and on the breach users go back to blue. A user load runs through
HAProxy the whole time; the summary counts what users saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import aiohttp

from watchdogd.config.traffic import DEFAULT_TRAFFIC_GATES
from watchdogd.daemon import logs
from watchdogd.demo import app_ctl, release
from watchdogd.deploy.green import Endpoint
from watchdogd.deploy.proxy import Proxy, Slot
from watchdogd.deploy.windows import TrafficJudge, TrafficWindows, breached
from watchdogd.errors import TrafficError
from watchdogd.traffic.haproxy import HAProxyRuntime
from watchdogd.traffic.log_line import LOG_FORMAT
from watchdogd.traffic.log_receiver import HAProxyLogReceiver
from watchdogd.traffic.split import SplitReconciler

EXIT_SWITCHED_BACK = 0
EXIT_NOT_SWITCHED_BACK = 1
EXIT_UNAVAILABLE = 3
INSTALL_HINT = (
    "watchdogd demo --traffic needs HAProxy, which is not installed here.\n"
    "Install it (Debian/Ubuntu: sudo apt-get install haproxy; Fedora: sudo dnf install "
    "haproxy; macOS: brew install haproxy) and run the demo again."
)
BACKEND = "app"
USERS_PER_SECOND = 50
BAKE_LIMIT = 30.0


def haproxy_binary() -> str | None:
    found = shutil.which("haproxy")
    if found:
        return found
    return "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None


def free_port() -> int:
    import socket  # noqa: PLC0415 - only here

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Users:
    """A steady user load through HAProxy, counted by status and by the release that answered."""

    url: str
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    failed_at: list[tuple[float, str]] = field(default_factory=list)
    sent: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                self.sent += 1
                began = time.monotonic()
                version, status = "-", 0
                try:
                    async with session.get(self.url, timeout=aiohttp.ClientTimeout(5)) as answer:
                        status = answer.status
                        body = await answer.json(content_type=None)
                        version = str(body.get("version", "-")) if isinstance(body, dict) else "-"
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass
                self.answers[(version, status)] += 1
                if not 0 < status < 500:
                    self.failed_at.append((began, version))
                await asyncio.sleep(max(0.0, 1 / USERS_PER_SECOND - (time.monotonic() - began)))

    def served(self, version: str) -> int:
        return sum(n for (v, _s), n in self.answers.items() if v == version)


def _config(workdir: Path, port: int, blue_port: int) -> str:
    return f"""\
global
    stats socket {workdir / "admin.sock"} mode 600 level admin
    log {workdir / "log.sock"} local0 info

defaults
    mode http
    log global
    log-format "{LOG_FORMAT}"
    option dontlognull
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend web
    bind 127.0.0.1:{port}

    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    server blue 127.0.0.1:{blue_port} weight 100
"""


def _release(root: Path, fault: str, version: str, port: int) -> None:
    root.mkdir(parents=True)
    release.create(root, fault, release.AppSettings(port=port, owner_pid=None))
    release.switch(root, version)


def run_traffic_demo(directory: Path | None = None) -> int:
    binary = haproxy_binary()
    if binary is None:
        print(INSTALL_HINT)
        return EXIT_UNAVAILABLE
    workdir = Path(directory or tempfile.mkdtemp(prefix="watchdogd-traffic-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logs.configure("warning", "console")  # the story is printed; HAProxy's chatter is not
    return asyncio.run(_run(binary, workdir))


async def _run(binary: str, workdir: Path) -> int:
    ports = {"blue": free_port(), "green": free_port(), "front": free_port()}
    roots = {"blue": workdir / "blue", "green": workdir / "green"}
    _release(roots["blue"], "errors", release.GOOD, ports["blue"])
    _release(roots["green"], "errors", release.BAD, ports["green"])
    config = workdir / "haproxy.cfg"
    config.write_text(_config(workdir, ports["front"], ports["blue"]))
    haproxy: subprocess.Popen[bytes] | None = None
    receiver: HAProxyLogReceiver | None = None
    try:
        for name in ("blue", "green"):
            ok, message = app_ctl.start(roots[name])
            print(f"{name}: {message}")
            if not ok:
                return EXIT_NOT_SWITCHED_BACK
        windows = TrafficWindows(span=60.0)
        receiver = HAProxyLogReceiver(workdir / "log.sock", windows)
        await receiver.start()
        log = (workdir / "haproxy.log").open("wb")
        haproxy = _start_haproxy(binary, config, log)
        runtime = HAProxyRuntime(workdir / "admin.sock")
        await _wait_for(runtime)
        print(f"HAProxy on 127.0.0.1:{ports['front']} sends every user to blue (v1)")
        return await _story(runtime, windows, ports)
    finally:
        if receiver is not None:
            await receiver.close()
        if haproxy is not None:
            haproxy.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                haproxy.wait(timeout=5)
        for root in roots.values():
            app_ctl.stop(root)


def _start_haproxy(binary: str, config: Path, log: BinaryIO) -> subprocess.Popen[bytes]:
    """HAProxy in the foreground (``-db``), logging to ``log``; returns at once."""
    return subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=log)


async def _wait_for(runtime: HAProxyRuntime) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(TrafficError):
            await runtime.servers(BACKEND)
            return
        await asyncio.sleep(0.1)
    await runtime.servers(BACKEND)  # raises the TrafficError that says why


async def _story(runtime: HAProxyRuntime, windows: TrafficWindows, ports: dict[str, int]) -> int:
    proxy = Proxy(SplitReconciler(runtime, drain_timeout=2.0), BACKEND)
    blue = Slot("blue", Endpoint("127.0.0.1", ports["blue"]))
    green = Slot("wd-green", Endpoint("127.0.0.1", ports["green"]))
    users = Users(f"http://127.0.0.1:{ports['front']}/api")
    stop = asyncio.Event()
    load = asyncio.create_task(users.run(stop))
    try:
        await asyncio.sleep(2.0)
        print(f"users: {users.sent} requests so far, all on blue")
        print("deploy v2: pre-checks against green directly ...", end=" ", flush=True)
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.get(f"http://127.0.0.1:{ports['green']}/health") as answer:
                    if answer.status != 200:
                        print(f"failed ({answer.status})")
                        return EXIT_NOT_SWITCHED_BACK
        print("passed (its fault shows only under real traffic)")
        traffic = windows.watch(BACKEND, green.server)
        await proxy.switch(green, [blue], standby=True)
        switched = time.monotonic()
        print("traffic switched to green (v2); blue stays running, drained, as standby")
        judge = TrafficJudge(DEFAULT_TRAFFIC_GATES)
        while time.monotonic() - switched < BAKE_LIMIT:
            now = time.monotonic()
            bad = breached(judge.evaluate(traffic, now))
            if bad is not None:
                detected = now
                await proxy.switch(blue, [green])
                applied = time.monotonic()
                print(f"green breached {bad.gate}: {bad.reason}")
                print(
                    f"switched back to blue: applied and verified {1000 * (applied - detected):.0f}"
                    " ms after detection"
                )
                await asyncio.sleep(2.0)
                stop.set()
                await load
                _summary(users, switched, detected)
                return EXIT_SWITCHED_BACK
            await asyncio.sleep(0.05)
        print(f"green was not caught within {BAKE_LIMIT:g} s")
        return EXIT_NOT_SWITCHED_BACK
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await load


def _summary(users: Users, switched: float, detected: float) -> None:
    failed = len(users.failed_at)
    before = sum(1 for at, _v in users.failed_at if switched <= at < detected)
    after = sum(1 for at, _v in users.failed_at if at >= detected)
    print()
    print(
        f"users sent {users.sent} requests: blue answered {users.served(release.GOOD)}, "
        f"green {users.served(release.BAD)}"
    )
    print(
        f"failed requests users saw: {failed} in all, {before} while green served "
        f"({detected - switched:.1f} s until the gate was sure), {after} sent after detection"
    )
    print(
        "with a re-create instead of a switch, every user request fails while the container "
        "restarts (see BENCHMARKS.md)"
    )
