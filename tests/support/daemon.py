"""The real daemon as a process: ``start_daemon`` runs ``watchdogd run``; ``DaemonProcess``
talks to it; ``NotifySocket`` stands in for systemd's notify socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.scripts import benchmark_modules
from tests.support.waiting import wait_for

TOKEN = "test-token-0123456789"

with benchmark_modules("shipped_env") as shipped_env:
    # The environment the shipped systemd unit gives the daemon (benchmarks/shipped_env.py).
    shipped_environment = shipped_env.daemon_environment


def daemon_yaml(
    port: int,
    state_dir: Path | str,
    *,
    listen_host: str = "127.0.0.1",
    token_file: Path | None = None,
    level: str = "info",
    docker: str = "poll_interval: 300ms",
    defaults: str = "bake_time: 1s, cooldown: 1s, window: 1m",
) -> str:
    """The head of a test daemon's config, up to ``targets:`` exclusive: the listen address,
    the token (``TOKEN`` inline, or ``token_file``, which the caller writes), JSON logs, the
    engine and the defaults. The engine is ``DOCKER_HOST``'s (inside private-docker, the
    private one), never a default that would reach the shared engine."""
    token = f"api_token: {TOKEN}" if token_file is None else f"api_token_file: {token_file}"
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return f"""\
listen: {listen_host}:{port}
{token}
state_dir: {state_dir}
log: {{format: json, level: {level}}}
docker: {{host: "{host}", {docker}}}
defaults: {{{defaults}}}
"""


def release_dir_target(
    release_dir: Path | str,
    app_port: int,
    *,
    name: str = "app",
    interval: str = "200ms",
    restart: str = "[/bin/true]",
) -> str:
    """A release-directory target with one http check on ``app_port`` and its error-rate
    gate, as a ``targets:`` list item (a ``playbook:`` may follow, indented four)."""
    return f"""\
  - name: {name}
    release_dir: {{path: "{release_dir}", restart: {restart}}}
    checks:
      - {{name: api, type: http, url: "http://127.0.0.1:{app_port}/", interval: {interval},
         timeout: 1s}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
"""


@dataclass
class NotifySocket:
    """A datagram socket standing in for systemd's; collects what the daemon sends."""

    path: str
    messages: list[str] = field(default_factory=list)
    _sock: socket.socket | None = None

    def start(self) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = "\0" + self.path[1:] if self.path.startswith("@") else self.path
        self._sock.bind(address)
        self._sock.settimeout(0.2)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(data.decode())

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()

    def wait_for(self, field_: str, timeout: float = 20.0) -> None:
        wait_for(
            f"{field_} on the notify socket",
            lambda: any(field_ in m.split("\n") for m in self.messages),
            timeout=timeout,
            interval=0.05,
            context=lambda: f"got {self.messages}",
        )


@dataclass
class DaemonProcess:
    config: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def post(
        self, path: str, body: Any = None, token: str | None = TOKEN, raw: bytes | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        content = raw if raw is not None else json.dumps(body).encode()
        return httpx.post(self.url + path, content=content, headers=headers, timeout=10)

    def target(self, name: str) -> dict[str, Any]:
        return self.get(f"/api/v1/targets/{name}").json()  # type: ignore[no-any-return]

    def wait_state(self, name: str, state: str, timeout: float = 30.0) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def reached() -> dict[str, Any] | None:
            nonlocal last
            last = self.target(name)
            return last if last["state"] == state else None

        return wait_for(
            f"{name} to reach {state}",
            reached,
            timeout=timeout,
            context=lambda: f"{json.dumps(last, indent=1)}\n{self.log.read_text()[-4000:]}",
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited: {self.log.read_text()[-4000:]}")
            return self.get("/readyz").status_code == 200

        wait_for(
            "the daemon to be ready",
            ready,
            timeout=timeout,
            ignore=(httpx.HTTPError,),
            context=lambda: self.log.read_text()[-4000:],
        )

    def metric(self, line_prefix: str) -> float | None:
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(line_prefix + " ") or (
                line.startswith(line_prefix + "{") and line_prefix.endswith("}")
            ):
                return float(line.rsplit(" ", 1)[1])
            if line.startswith(line_prefix) and " " in line and line.split(" ")[0] == line_prefix:
                return float(line.rsplit(" ", 1)[1])
        return None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_daemon(
    config: Path, port: int, tmp_path: Path, env: dict[str, str] | None = None
) -> DaemonProcess:
    log = tmp_path / "daemon.log"
    # As the shipped unit runs it (PYTHONOPTIMIZE=2 and the rest of its Environment= lines).
    environment = shipped_environment(os.environ) | (env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "watchdogd", "run", "--config", str(config)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=environment,
        start_new_session=True,
    )
    return DaemonProcess(config=config, port=port, process=process, log=log)
