"""One demo run: start the good release and watchdogd, deploy the bad release, watch watchdogd
roll it back, print the summary, and leave nothing running.

watchdogd runs as its own process (``watchdogd run``, exactly as in production) with the
stage's config; the demo only reads its API, as ``watchdogd status`` does. Every process and
container the demo starts is stopped in a ``finally``; the app and the daemon also stop by
themselves if the demo is killed outright (see ``app`` and ``procs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdogd.demo import procs
from watchdogd.demo.api import DaemonApi
from watchdogd.demo.stage import ReleaseDirStage, Stage
from watchdogd.demo.summary import DemoResult, summary_lines
from watchdogd.demo.traffic import Traffic
from watchdogd.demo.view import Reporter, Snapshot, make_reporter
from watchdogd.errors import DemoError

EXIT_ROLLED_BACK = 0
EXIT_NOT_ROLLED_BACK = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

TARGET = "app"
READY_TIMEOUT = 20.0
BAKE_TIMEOUT = 20.0  # the config's bake time is 3 s; the rest is start-up
ROLLBACK_TIMEOUT = 40.0
SETTLE = 2.0
POLL = 0.25
FINAL_STATES = ("rolled_back", "frozen", "failed")


@dataclass(frozen=True)
class DemoOptions:
    fault: str = "errors"
    docker: bool = False
    directory: Path | None = None
    plain: bool = False
    labels: dict[str, str] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_stage(options: DemoOptions, root: Path) -> Stage:
    if options.docker:
        from watchdogd.demo.docker_stage import DockerStage  # noqa: PLC0415 - only for --docker

        return DockerStage.create(root, options.fault, free_port(), options.labels)
    return ReleaseDirStage(root / "app", options.fault, free_port(), os.getpid())


def run_demo(options: DemoOptions) -> int:
    if options.directory is not None and any(options.directory.glob("*")):
        # A previous run's store would remember v2 as quarantined and tell another story.
        print(f"watchdogd demo: {options.directory} is not empty", file=sys.stderr)
        return EXIT_USAGE
    root = options.directory or Path(tempfile.mkdtemp(prefix="watchdogd-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        stage = make_stage(options, root)
    except DemoError as err:
        print(f"watchdogd demo: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    title = f"watchdogd demo · fault: {options.fault} · {stage.description}"
    reporter = make_reporter(title, options.plain)
    demo = Demo(options, root, stage, reporter)
    try:
        code = asyncio.run(demo.main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\nwatchdogd demo: interrupted; everything it started is stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    for line in summary_lines(demo.result):
        print(line)
    return code


class Demo:
    def __init__(self, options: DemoOptions, root: Path, stage: Stage, reporter: Reporter):
        self.options = options
        self.root = root
        self.stage = stage
        self.reporter = reporter
        self.result = DemoResult(options.fault, stage.description)
        self.started = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self._last_event = 0
        self._daemon: subprocess.Popen[bytes] | None = None
        self._api: DaemonApi | None = None

    def note(self, text: str) -> None:
        self.reporter.note(time.monotonic() - self.started, text)

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - main() runs as a task under asyncio.run
        # SIGTERM and SIGINT (even where a shell ignored it for a background job) cancel the
        # run: it unwinds through the finally blocks below, which stop everything.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        traffic_task: asyncio.Task[None] | None = None
        try:
            self.note(f"working directory {self.root}")
            self.note(await self.stage.start())
            api = await self._start_daemon()
            traffic = Traffic(self.stage.app_url + self.stage.traffic_path)
            traffic_task = asyncio.create_task(traffic.run())
            self.note(f"users: {traffic.rate:g} requests a second to {traffic.url}")
            return await self._story(api, traffic)
        except DemoError as err:
            self.result.problem = str(err)
            return EXIT_NOT_ROLLED_BACK
        finally:
            if traffic_task is not None:
                traffic_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await traffic_task
            await asyncio.shield(self._stop_everything())
            self.reporter.close()

    async def _story(self, api: DaemonApi, traffic: Traffic) -> int:
        status = await self._watch(api, traffic, lambda s: s["state"] == "healthy", BAKE_TIMEOUT)
        if status is None or status["state"] != "healthy":
            self.result.problem = "the good release never passed its bake time"
            return EXIT_NOT_ROLLED_BACK
        self.note("watchdogd: v1 passed its bake time and is the known-good release")
        self.result.deployed_at = time.time()
        deployed = time.monotonic()
        self.note(await self.stage.deploy())
        status = await self._watch(
            api, traffic, lambda s: s["state"] in FINAL_STATES, ROLLBACK_TIMEOUT
        )
        ended = time.monotonic()
        if status is not None and status["state"] == "rolled_back":
            # A little longer: the restored release's first verdicts, and proof it stays put.
            status = await self._watch(api, traffic, lambda s: False, SETTLE)
        self.result.users = traffic.between(deployed, ended)
        self.result.started = self._event("incident_started")
        self.result.finished = self._event("incident_finished")
        if status is None or status["state"] != "rolled_back":
            state = status["state"] if status else "unknown"
            self.result.problem = (
                f"the target ended {state}, not rolled_back, within {ROLLBACK_TIMEOUT:g} s"
            )
        self.result.restored, self.result.restored_detail = await self.stage.restored()
        await self._export_audit(api)
        return EXIT_ROLLED_BACK if self.result.rolled_back else EXIT_NOT_ROLLED_BACK

    def _event(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e["kind"] == kind), None)

    async def _watch(
        self,
        api: DaemonApi,
        traffic: Traffic,
        done: Callable[[dict[str, Any]], bool],
        timeout: float,
    ) -> dict[str, Any] | None:
        """Show snapshots until ``done(status)`` or the timeout; the last status seen."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] | None = None
        while True:
            status = await api.target(TARGET)
            events = await api.events_after(self._last_event)
            if events:
                self._last_event = events[-1]["id"]
                self.events += events
            elapsed = time.monotonic() - self.started
            self.reporter.show(Snapshot(elapsed, status, events, traffic.recent()))
            if status is not None and done(status):
                return status
            if time.monotonic() >= deadline:
                return status
            self._check_daemon()
            await asyncio.sleep(POLL)

    # --- watchdogd -------------------------------------------------------------------------

    async def _start_daemon(self) -> DaemonApi:
        port = free_port()
        token = secrets.token_urlsafe(24)
        token_file = self.root / "token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        config = self.root / "watchdogd.yaml"
        state_dir = self.root / "state"
        config.write_text(self.stage.config(f"127.0.0.1:{port}", token_file, state_dir))
        log = self.root / "watchdogd.log"
        self.result.files.update(
            config=config,
            daemon_log=log,
            audit_db=state_dir / "watchdogd.db",
        )
        if self.stage.app_log is not None:
            self.result.files["app_log"] = self.stage.app_log
        # Not the caller's systemd: this daemon must not speak for the demo's own unit.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
        argv = [sys.executable, "-m", "watchdogd", "run", "--config", str(config)]
        with log.open("wb") as out:
            # In this (the main) thread: the death signal fires when the forking thread ends.
            self._daemon = subprocess.Popen(  # noqa: ASYNC220 - fork+exec, no waiting
                procs.tied_to_this_process(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops it in order
            )
        api = self._api = DaemonApi(f"http://127.0.0.1:{port}", token)
        deadline = time.monotonic() + READY_TIMEOUT
        while not await api.ready():
            self._check_daemon()
            if time.monotonic() > deadline:
                raise DemoError(f"watchdogd did not become ready; see {log}")
            await asyncio.sleep(0.1)
        self.note(f"watchdogd: running (pid {self._daemon.pid}), API on {api.url}")
        return api

    def _check_daemon(self) -> None:
        if self._daemon is not None and self._daemon.poll() is not None:
            log = self.result.files.get("daemon_log")
            raise DemoError(f"watchdogd exited with {self._daemon.returncode}; see {log}")

    async def _export_audit(self, api: DaemonApi) -> None:
        events = await api.events_after(0, limit=500)
        path = self.root / "audit.jsonl"
        path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))
        self.result.files["audit_jsonl"] = path

    async def _stop_everything(self) -> None:
        daemon = self._daemon
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(daemon.wait), 15.0)
            except TimeoutError:
                daemon.kill()
                await asyncio.to_thread(daemon.wait)
        if self._api is not None:
            await self._api.close()
        await self.stage.close()
