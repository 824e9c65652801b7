"""``watchdogd run``: one asyncio process that wires everything and keeps it running.

Start-up, in this order, so that nothing is resumed or decided by a daemon that cannot run:
lock ``state_dir`` (one daemon per directory), open the store, bind the listen address, then
build the targets, resume interrupted incidents and start the loops.

Signals only set flags (as uvicorn does): SIGTERM/SIGINT stop accepting work, let a playbook
step in flight finish within ``server.shutdown_timeout`` (the journal makes the rest
resumable) and exit 0; a second one forces the exit. SIGHUP reloads the config: every setting
takes effect, except those that need a restart (``config.reload``), whose change refuses the
reload by name; an invalid or refused config is logged, counted, and the old one keeps running.

Exit codes: 0 stopped, 1 forced or failed, 2 the config is wrong, 3 cannot start here
(``state_dir`` locked by another watchdogd or unusable, the listen address in use or
unresolvable). Each is one line on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from watchdogd.api.alert_intake import AlertIntake, IntakeUnavailable
from watchdogd.api.connections import CappedSite, connection_cap
from watchdogd.api.server import build_app, make_runner
from watchdogd.config import Config, summarize
from watchdogd.config.out_of_process import PendingConfig, reload_config
from watchdogd.config.reload import restart_only_changes
from watchdogd.daemon import logs
from watchdogd.daemon.sdnotify import SystemdNotifier
from watchdogd.daemon.state_lock import StateDirLock
from watchdogd.daemon.supervisor import Supervisor
from watchdogd.daemon.wiring import Wiring
from watchdogd.errors import (
    ConfigError,
    ConfigProblem,
    ControlRefused,
    StartupError,
    StoreError,
    WatchdogError,
)
from watchdogd.metrics.registry import Metrics
from watchdogd.model import Trigger, TriggerKind
from watchdogd.store import Store
from watchdogd.watch.controller import TargetController

if TYPE_CHECKING:
    from watchdogd.api.alertmanager import WebhookPayload

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_FORCED = 1
EXIT_CONFIG = 2
EXIT_STARTUP = 3
TICK = 1.0
#: Targets evaluated between two yields to the event loop.
TICK_SLICE = 50


def read_token(config: Config) -> str | None:
    """The API token: inline, or the first line of ``api_token_file``."""
    if config.api_token:
        return config.api_token
    if config.api_token_file is None:
        return None
    try:
        return config.api_token_file.read_text().strip() or None
    except OSError as err:
        problem = ConfigProblem(
            1, ("api_token_file",), f"cannot read {config.api_token_file}: {err.strerror}"
        )
        raise ConfigError(str(config.api_token_file), [problem]) from err


class Daemon:
    def __init__(self, config_path: str, config: Config) -> None:
        self.config_path = config_path
        self.config = config
        self.metrics = Metrics()
        self.notifier = SystemdNotifier()
        self.supervisor = Supervisor(self.metrics)
        self.token = read_token(config)
        self.store = Store.in_state_dir(
            config.state_dir, on_error=lambda _err: self.metrics.store_errors.inc()
        )
        self.wiring = Wiring(
            config, store=self.store, metrics=self.metrics, supervisor=self.supervisor
        )
        self.alert_intake = AlertIntake(
            self.store, self.metrics, lambda: list(self.controllers.values())
        )
        self._stop = asyncio.Event()
        # One reload at a time, in the order asked: each waits for its config's child process,
        # and a SIGHUP that came first must not be applied last.
        self._reloading = asyncio.Lock()
        self._signals = 0
        self._runner: web.AppRunner | None = None
        self._last_tick = time.monotonic()
        self._sources_started = False

    @property
    def controllers(self) -> dict[str, TargetController]:
        return self.wiring.controllers

    # --- life cycle ------------------------------------------------------------------------

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)
        try:
            await self.start()
            await self._stop.wait()
        finally:
            await self.shutdown()
        return EXIT_OK

    async def start(self) -> None:
        # The address first: a daemon that cannot serve must not resume or decide anything.
        await self._bind()
        self.metrics.store_writable.set(1 if self.store.check_writable() else 0)
        await asyncio.to_thread(self.store.check_integrity)  # /readyz says if damaged
        self.metrics.watch_targets(
            lambda: [c.view(time.monotonic(), recent=True) for c in self.controllers.values()]
        )
        await self.wiring.open()
        self.wiring.build()
        await self.wiring.resume_incidents()
        self.wiring.start_sources(self.config.targets)
        self.supervisor.start("tick", self._tick_loop)
        self.supervisor.start("releases", self._release_loop)
        if self.notifier.watchdog_interval:
            self.supervisor.start("watchdog", self._watchdog_loop)
        self._sources_started = True
        log.info("watchdogd_started", listen=self.config.listen, summary=summarize(self.config))
        # Everything built so far (modules, config, windows) lives as long as the process: out
        # of the collector's sight, a full collection at 1000 targets takes ~10 ms, not ~130 ms
        # of a stalled event loop (benchmarks/bench_load.py, lag).
        gc.freeze()
        self.notifier.ready(self._status_line())

    async def _bind(self) -> None:
        server = self.config.server
        app = build_app(
            self,
            self.metrics,
            lambda: self.token,  # read per request, so a reload rotates it
            server.max_body,
            server=server,
            listen_host=self.config.listen_host,
        )
        self._runner = make_runner(app, server)
        await self._runner.setup()
        cap = connection_cap(server.max_connections)
        site = CappedSite(self._runner, self.config.listen_host, self.config.listen_port, cap=cap)
        try:
            await site.start()
        except OSError as err:  # in use, not an address of this host, or no such name
            raise StartupError(f"cannot listen on {self.config.listen}: {_reason(err)}") from None

    async def shutdown(self) -> None:
        self.notifier.stopping()
        log.info("stopping")
        if self._runner is not None:
            await self._runner.cleanup()  # stop accepting webhooks and API calls first
        # No new decisions from here on; but the sources keep feeding the windows until the
        # playbooks in flight end, or a wait_healthy step could only time out and fail an
        # incident whose rollback worked (found by benchmarks/bench_mttr.py).
        self.supervisor.stop("tick")
        self.supervisor.stop("releases")
        for controller in self.controllers.values():
            controller.prompt.deciding = False
        deadline = self.config.server.shutdown_timeout
        running = [
            c.playbook_task for c in self.controllers.values() if c.playbook_task is not None
        ]
        if running:
            log.info(
                "shutdown_waiting_for_playbooks", count=len(running), deadline_seconds=deadline
            )
            _done, pending = await asyncio.wait(running, timeout=deadline)
            for task in pending:
                task.cancel()  # the journal says where it stood; the next start resumes it
        await self.wiring.stop_sources()
        await self.supervisor.stop_all()
        await self.wiring.close()
        self.store.close()
        log.info("stopped")

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("shutdown_forced", signal=sig.name)
            os._exit(EXIT_FORCED)
        log.info("shutdown_signal", signal=sig.name)
        self._stop.set()

    def _on_reload_signal(self) -> None:
        asyncio.get_running_loop().create_task(self.reload())

    # --- reload ----------------------------------------------------------------------------

    async def reload(self) -> bool:
        async with self._reloading:
            return await self._reload()

    async def _reload(self) -> bool:
        self.notifier.reloading()
        try:
            config = await reload_config(self.config_path)
            token = read_token(config)
            refused = restart_only_changes(self.config, config)
        except ConfigError as err:
            return self._reload_failed(str(err))
        if refused:
            return self._reload_failed(
                f"{', '.join(refused)} change only on restart; restart watchdogd, or put "
                "the running value back"
            )
        logs.configure(config.log.level, config.log.format)
        logs.set_secrets(config.secrets | ({token} if token else set()))
        self.token = token
        await self.wiring.reload(config)
        self.config = config
        self.metrics.reload_success.set(1)
        log.info("config_reloaded", summary=summarize(config))
        self.notifier.ready(self._status_line())
        return True

    def _reload_failed(self, reason: str) -> bool:
        self.metrics.reload_failures.inc()
        self.metrics.reload_success.set(0)
        log.error("config_reload_failed", error=reason)
        self.notifier.ready(self._status_line("reload failed; old config running"))
        return False

    # --- loops -----------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            now = time.monotonic()
            self._last_tick = now
            for index, controller in enumerate(list(self.controllers.values())):
                await controller.tick(now)
                if index % TICK_SLICE == TICK_SLICE - 1:
                    # A tick of 1000 targets takes ~40 ms of CPU; let probes and requests in
                    # between, so no one waits for the whole of it (benchmarks/bench_load.py).
                    await asyncio.sleep(0)
            await asyncio.sleep(TICK - (time.monotonic() - now) % TICK)

    async def _release_loop(self) -> None:
        while True:
            now = time.monotonic()
            await asyncio.gather(*(c.observe_release(now) for c in list(self.controllers.values())))
            # Probed, not just remembered: a store nobody writes to would never notice that it
            # went read-only until an incident needed it (tests/reliability).
            self.metrics.store_writable.set(1 if self.store.check_writable() else 0)
            await asyncio.sleep(self.config.docker.poll_interval)

    async def _watchdog_loop(self) -> None:
        """Keep-alives only while the loop really works: the tick loop must have run lately."""
        interval = self.notifier.watchdog_interval or 1.0
        while True:
            await asyncio.sleep(interval)
            lag = time.monotonic() - self._last_tick
            self.metrics.event_loop_lag.set(max(0.0, lag - TICK))
            if lag < interval * 2:
                self.notifier.watchdog()
                self.notifier.status(self._status_line())

    def _status_line(self, extra: str = "") -> str:
        states: dict[str, int] = {}
        for controller in self.controllers.values():
            state = str(controller.machine.state)
            states[state] = states.get(state, 0) + 1
        text = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no targets"
        return f"{len(self.controllers)} targets: {text}" + (f"; {extra}" if extra else "")

    # --- server.Control --------------------------------------------------------------------

    def readiness(self) -> list[str]:
        reasons = []
        if not self._sources_started:
            reasons.append("sources not started")
        if not self.store.writable:
            reasons.append("state store not writable")
        if self.store.damage:
            reasons.append(f"state store damaged: {self.store.damage}")
        return reasons

    def target_names(self) -> list[str]:
        return list(self.controllers)

    def target_status(self, name: str) -> dict[str, Any]:
        return self.wiring.status(self.controllers[name])

    def _require_started(self) -> None:
        # The address is bound before the targets exist: until then, ask the caller to come
        # back (Alertmanager retries a 503) rather than drop an alert or answer "no target".
        if not self._sources_started:
            raise ControlRefused(503, "watchdogd is starting; try again in a moment")

    def _controller(self, name: str) -> TargetController:
        self._require_started()
        try:
            return self.controllers[name]
        except KeyError:
            raise ControlRefused(404, f"no target named {name!r}") from None

    async def rollback(self, name: str, to: str | None, reason: str) -> dict[str, Any]:
        controller = self._controller(name)
        trigger = Trigger(TriggerKind.MANUAL, "operator", reason)
        incident = await controller.request(trigger, to=to)
        return {"target": name, "incident": incident}

    async def freeze(self, name: str, reason: str) -> dict[str, Any]:
        controller = self._controller(name)
        controller.freeze(reason)
        return {"target": name, "state": str(controller.machine.state)}

    async def unfreeze(self, name: str) -> dict[str, Any]:
        controller = self._controller(name)
        controller.unfreeze()
        return {"target": name, "state": str(controller.machine.state)}

    async def unquarantine(self, name: str, image: str) -> dict[str, Any]:
        controller = self._controller(name)
        controller.records.unquarantine(image)
        return {"target": name, "image": image, "quarantined": False}

    async def deploy(self, name: str, image: str) -> dict[str, Any]:
        return await (await self.wiring.deploy_manager()).deploy(name, image)

    async def deploy_status(self, name: str, deploy_id: str | None) -> dict[str, Any]:
        return (await self.wiring.deploy_manager()).status(name, deploy_id)

    async def deploy_order(self, name: str, order: str) -> dict[str, Any]:
        return (await self.wiring.deploy_manager()).control(name, order)

    def events(self, limit: int, before: int | None, target: str | None) -> list[dict[str, Any]]:
        try:
            events = self.store.events(limit=limit, before_id=before, target=target)
            return [dataclasses.asdict(event) for event in events]
        except StoreError as err:
            raise ControlRefused(503, str(err)) from err

    async def receive_alerts(self, payload: WebhookPayload) -> dict[str, Any]:
        self._require_started()
        try:
            return await self.alert_intake.receive(payload.alerts)
        except IntakeUnavailable as err:
            raise ControlRefused(503, str(err)) from err


def _reason(err: OSError) -> str:
    """``Address already in use``, ``Name or service not known``: the cause, not asyncio's
    wrapping of it."""
    if isinstance(err, socket.gaierror) or not err.errno:
        return str(err.strerror or err)
    return os.strerror(err.errno)


def run_daemon(config_path: str, pending: PendingConfig | None = None) -> int:
    """``watchdogd run``: ``pending`` is the config's validation, started before the daemon's
    modules were imported (``cli``), so that the two overlap."""
    try:
        config = (pending or PendingConfig(config_path)).result()
        token = read_token(config)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(config.log.level, config.log.format)
    logs.set_secrets(config.secrets | ({token} if token else set()))
    try:
        # Before anything else: a second daemon on this state_dir must not touch its store.
        with StateDirLock.acquire(Path(config.state_dir)):
            return asyncio.run(Daemon(config_path, config).main())
    except StartupError as err:
        print(f"watchdogd cannot start: {err}", file=sys.stderr)
        return EXIT_STARTUP
    except WatchdogError as err:
        print(f"watchdogd cannot start: {err}", file=sys.stderr)
        return EXIT_FORCED
