"""What the blue-green benchmark's cases share: the user load through HAProxy that records every
request, the HAProxy in front of the app, the daemon's config and the outcome of one incident
(``bench_bluegreen.py`` says how they are used and what the figures mean)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import TOKEN, free_port

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


def daemon_config(
    workdir: Path, port: int, target: str, proxy: HAProxy, traffic: bool, *, strategy: str = ""
) -> Path:
    """The daemon's config: target ``shop`` (``target`` is its kind line, e.g. ``container: web``)
    with an HTTP check through HAProxy every 300 ms and an error-rate gate; ``traffic:`` for
    blue-green, or for a canary with ``strategy`` (YAML lines of the traffic section)."""
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
{strategy}"""
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
    {target}
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
    detected_by: str = ""


def wait(ready: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.1)
