"""Builds and rebuilds the daemon's moving parts from its config: one probe client, one Docker
watcher, and per target a driver, a playbook runner, a controller and one source per check.

Kept apart from ``lifecycle`` so the life cycle (signals, loops, shutdown) reads on its own,
and reload has one place that decides what survives. Its dependencies (store, metrics,
supervisor) are passed in; it owns the controllers and knows nothing of the daemon. A
controller, its runner and its ``wait_healthy`` judge form no reference cycle, so a reload that
drops a target frees it at once, without a garbage collection.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from watchdogd.config.schema import Config, TargetConfig, TargetKind
from watchdogd.config.steps import Step
from watchdogd.daemon.resumption import restore_mirrors, resume_open
from watchdogd.daemon.supervisor import Supervisor
from watchdogd.errors import StepFailed, StoreError, TrafficError
from watchdogd.metrics.registry import Metrics
from watchdogd.model import public_release
from watchdogd.playbook.crash_points import pause_hook_for_tests
from watchdogd.playbook.notify import send
from watchdogd.playbook.runner import BeforeStep, PlaybookRunner
from watchdogd.sources.poller import Poller
from watchdogd.sources.probe_client import ProbeClient
from watchdogd.store import Store
from watchdogd.targets.factory import engine_factory, make_driver
from watchdogd.watch.controller import TargetController
from watchdogd.watch.evidence import RestoreEvidence
from watchdogd.watch.mirror import StateMirror
from watchdogd.watch.recorder import CheckRecorder

if TYPE_CHECKING:
    from watchdogd.deploy.manager import DeployManager
    from watchdogd.sources.docker_health import ContainerSelector, DockerHealthWatcher
    from watchdogd.targets.base import TargetDriver
    from watchdogd.targets.swarm import SwarmDriver
    from watchdogd.watch.swarm_state import SwarmStateMirror

# Docker and Swarm sources are imported when a target needs them (see _swarm_driver,
# _start_target_sources, _docker_watcher): they bring the Docker SDK, about 18 MB and 100 ms
# at start that a daemon of release directories and HTTP checks never uses. The deploy manager
# and its HAProxy code likewise (deploy_manager): 0.8 MB that only traffic targets need; and
# each check type's source (source_class).

log = structlog.get_logger(__name__)

# Each check type's source class, imported for the first check of that type.
SOURCES: dict[str, tuple[str, str]] = {
    "http": ("watchdogd.sources.http", "HttpProbe"),
    "auth_flow": ("watchdogd.sources.auth_flow", "AuthFlowProbe"),
    "scrape": ("watchdogd.sources.scrape", "ScrapeSource"),
    "promql": ("watchdogd.sources.promql", "PromqlSource"),
}


def source_class(check_type: str) -> type[Poller[Any]]:
    module, name = SOURCES[check_type]
    found: type[Poller[Any]] = getattr(importlib.import_module(module), name)
    return found


class Wiring:
    def __init__(
        self, config: Config, *, store: Store, metrics: Metrics, supervisor: Supervisor
    ) -> None:
        self.config = config
        self.controllers: dict[str, TargetController] = {}
        self._store = store
        self._metrics = metrics
        self._supervisor = supervisor
        self._client: ProbeClient | None = None
        self._http: aiohttp.ClientSession | None = None
        self._engine = engine_factory(config.docker)
        self._watcher: DockerHealthWatcher | None = None
        self._subscriptions: dict[str, tuple[ContainerSelector, CheckRecorder]] = {}
        self._reloading = asyncio.Lock()  # one reload at a time: a Swarm restore awaits
        # Blue-green and canary deploys of targets with traffic (docs/blue-green.md): built by
        # deploy_manager() for the first such target, open deploy or deploy API call.
        self._deploys: DeployManager | None = None
        self._deploy_loops = False  # resume_incidents ran: a manager built later starts them

    def _probe_client(self) -> ProbeClient:
        assert self._client is not None  # noqa: S101 - open() runs first
        return self._client

    async def open(self) -> None:
        self._client = ProbeClient.create()
        self._http = aiohttp.ClientSession(trust_env=False)
        if self._deploys_needed():
            await self.deploy_manager()

    async def close(self) -> None:
        if self._deploys is not None:
            await self._deploys.close()
        if self._client is not None:
            await self._client.close()
        if self._http is not None:
            await self._http.close()

    # --- deploys ---------------------------------------------------------------------------

    def _deploys_needed(self) -> bool:
        if any(target.traffic for target in self.config.targets):
            return True
        try:
            return bool(self._store.open_deploys())  # resume() reports on them
        except StoreError:
            return True  # and resume() on the error

    async def deploy_manager(self) -> DeployManager:
        """The deploy manager, built at the first need: a target with traffic at start or at a
        reload, a deploy a crash left open, or a deploy API call."""
        if self._deploys is None:
            # In a thread, as the webhook's models: the first build must not stall the loop.
            module = await asyncio.to_thread(importlib.import_module, "watchdogd.deploy.manager")
            if self._deploys is None:  # nobody built it while this one imported
                self._deploys = module.DeployManager(
                    config=lambda: self.config,
                    store=self._store,
                    engine=self._engine,
                    registry=self._metrics.registry,
                    counters=self._metrics.traffic,
                    client=self._probe_client,
                    http=lambda: self._http,
                    controllers=self.controllers,
                )
                await self._deploys.open()
                if self._deploy_loops:
                    self._start_deploy_loops(self._deploys)
        return self._deploys

    async def _open_added_receivers(self, deploys: DeployManager) -> None:
        """HAProxy log receivers for the traffic targets a reload added. The reload stands
        without one: those targets' traffic windows stay empty (unknown), as the log says."""
        try:
            await deploys.open()
        except TrafficError as err:
            log.error("haproxy_log_receiver_failed", error=str(err))

    def _start_deploy_loops(self, deploys: DeployManager) -> None:
        deploys.plumbing.want_serving()
        self._supervisor.start("traffic-keeper", deploys.plumbing.keep)
        self._supervisor.start("endpoint-follower", deploys.plumbing.follow)

    # --- targets ---------------------------------------------------------------------------

    def build(self) -> None:
        """A controller for every configured target."""
        for target in self.config.targets:
            self.controllers[target.name] = self.controller(target)

    def controller(
        self, target: TargetConfig, keep: dict[str, CheckRecorder] | None = None
    ) -> TargetController:
        driver = make_driver(target, self._engine)
        if target.traffic is not None:
            assert self._deploys is not None  # noqa: S101 - open() and reload() built it
            driver = self._deploys.wrap(target, driver)
        swarm_driver = _swarm_driver(target, driver)
        mirror: SwarmStateMirror | None = None
        if swarm_driver is not None:
            from watchdogd.watch.swarm_state import SwarmStateMirror  # noqa: PLC0415

            mirror = SwarmStateMirror(target.name, swarm_driver, self._store)
        evidence = RestoreEvidence(driver)
        runner = PlaybookRunner(
            self._store,
            driver,
            notifiers=self.config.notify,
            health_check=evidence,
            before_step=_before_step(mirror, pause_hook_for_tests()),
        )
        return TargetController(
            target,
            self.config.defaults,
            driver=driver,
            store=self._store,
            runner=runner,
            evidence=evidence,
            metrics=self._metrics,
            recorders=keep,
            notify=self.notify_all,
            mirror=mirror,
        )

    async def resume_incidents(self) -> None:
        """Finish incidents a crash left running, before any new decision is made."""
        # Deploys first: an incident's rollback step may be the switch back of one.
        self._deploy_loops = True
        if self._deploys is not None:
            await self._deploys.resume()
            self._start_deploy_loops(self._deploys)
        # An empty state_dir is filled from the mirror, whose incidents are taken over first.
        await restore_mirrors(self.controllers)
        await resume_open(self._store, self.controllers, every_target=True)

    async def notify_all(self, target: str, message: str) -> None:
        """Tell every notifier about something outside a playbook (a freeze, a refusal)."""
        if self._http is None:
            return
        payload = {
            "event": "target_frozen",
            "target": target,
            "message": message,
            "title": f"watchdogd: {target} frozen",
            "text": message,
            "at": time.time(),
        }
        for notifier in self.config.notify:
            try:
                await send(notifier, payload, self._http)
            except StepFailed as err:
                log.warning("notification_failed", notifier=notifier.name, error=err.reason)

    # --- sources ---------------------------------------------------------------------------

    def start_sources(self, targets: list[TargetConfig]) -> None:
        for target in targets:
            self._start_target_sources(target)

    def _start_target_sources(self, target: TargetConfig) -> None:
        assert self._client is not None  # noqa: S101 - open() runs first
        controller = self.controllers[target.name]
        for check in target.checks:
            recorder = controller.recorders[check.name]
            task = f"source:{target.name}:{check.name}"
            swarm_driver = _swarm_driver(target, controller.driver)
            if check.type == "container_health" and swarm_driver is not None:
                from watchdogd.sources.swarm_tasks import SwarmTaskSource  # noqa: PLC0415

                swarm = SwarmTaskSource(
                    swarm_driver,
                    recorder,
                    check.interval,
                    on_change=partial(_observe_now, controller),
                )
                self._supervisor.start(task, swarm.run)
                continue
            if check.type == "container_health":
                from watchdogd.sources.docker_health import ContainerSelector  # noqa: PLC0415

                selector = ContainerSelector.for_target(target)
                if selector is not None:
                    self._docker_watcher().subscribe(selector, recorder)
                    self._subscriptions[task] = (selector, recorder)
                continue
            source = source_class(check.type)(
                check, recorder, self._client, secrets=self.config.secrets
            )
            if check.type == "scrape":
                from watchdogd.sources.scrape import ScrapeSource  # noqa: PLC0415 - loaded now

                # Checked once against the histogram's buckets at the first scrape.
                assert isinstance(source, ScrapeSource)  # noqa: S101 - SOURCES["scrape"]
                source.latency_thresholds = target.latency_thresholds(check.name)
            self._supervisor.start(task, source.run)

    def _docker_watcher(self) -> DockerHealthWatcher:
        from watchdogd.sources.docker_health import DockerHealthWatcher  # noqa: PLC0415

        if self._watcher is None:
            self._watcher = DockerHealthWatcher(self.config.docker, on_change=self._changed)
            self._supervisor.start("docker-events", self._watcher.run)
        return self._watcher

    def _changed(self, key: str) -> None:
        """A watched container was created, started or removed: look for a new release now."""
        from watchdogd.sources.docker_health import ContainerSelector  # noqa: PLC0415

        for controller in self.controllers.values():
            selector = ContainerSelector.for_target(controller.config)
            if selector is not None and selector.key == key:
                asyncio.get_running_loop().create_task(controller.observe_release(time.monotonic()))

    def _stop_target_sources(self, target: str) -> None:
        prefix = f"source:{target}:"
        for name in self._supervisor.names():
            if name.startswith(prefix):
                self._supervisor.stop(name)
        for name in [n for n in self._subscriptions if n.startswith(prefix)]:
            selector, recorder = self._subscriptions.pop(name)
            if self._watcher is not None:
                self._watcher.unsubscribe(selector, recorder)

    async def stop_sources(self) -> None:
        for target in list(self.controllers):
            self._stop_target_sources(target)

    # --- reload ----------------------------------------------------------------------------

    async def reload(self, new: Config) -> None:
        """``apply`` at SIGHUP. A Swarm target the reload adds (or points at another service)
        starts as at start-up, from the state kept in Swarm, restored before the release loop
        sees it (a release recorded first would stop the import); then its incident resumes."""
        async with self._reloading:
            if any(target.traffic for target in new.targets):
                await self.deploy_manager()
            old = {t.name: t for t in self.config.targets}
            fresh = {
                t.name: self.controller(t)
                for t in new.targets
                if t.kind is TargetKind.SWARM and _rebuilt(old.get(t.name), t, self.controllers)
            }
            await restore_mirrors(fresh)
            self.apply(new, fresh)
            if self._deploys is not None:
                await self._open_added_receivers(self._deploys)
            await resume_open(self._store, fresh, every_target=False)

    def apply(self, new: Config, built: dict[str, TargetController] | None = None) -> None:
        """Move to ``new``: unchanged checks keep their windows, the rest start empty; kept
        targets' playbooks use the new notifiers. ``built``: new controllers made already."""
        built = built or {}
        old, self.config = self.config, new
        old_targets = {t.name: t for t in old.targets}
        for name in [n for n in self.controllers if n not in {t.name for t in new.targets}]:
            self._stop_target_sources(name)
            del self.controllers[name]
            log.info("target_removed", target=name)
        for target in new.targets:
            self._stop_target_sources(target.name)
            before = old_targets.get(target.name)
            if before is None or _rebuilt(before, target, self.controllers):
                self.controllers[target.name] = built.get(target.name) or self.controller(target)
            else:
                controller = self.controllers[target.name]
                unchanged = {c.name for c in target.checks if c in before.checks}
                keep = {n: r for n, r in controller.recorders.items() if n in unchanged}
                controller.apply_config(target, new.defaults, keep)
                controller.runner.use_notifiers(new.notify)
            self._start_target_sources(target)

    # --- API views -------------------------------------------------------------------------

    def status(self, controller: TargetController) -> dict[str, Any]:
        now = time.monotonic()
        view = controller.view(now)
        store = self._store
        try:
            exclude = [controller.current.id] if controller.current else []
            known_good = store.newest_known_good(controller.name, excluding=exclude)
            quarantined = store.quarantined(controller.name)
        except StoreError:
            known_good, quarantined = None, []
        return {
            "name": controller.name,
            "kind": str(controller.config.kind),
            "state": view.state,
            # A new release in its `warmup`: samples shown, only the fast paths judge them.
            "warming_up": controller.warming_up(now),
            "deploy": self._deploys.progress(controller.name) if self._deploys else None,
            "since": round(time.time() - (now - controller.machine.since), 3),
            "current_release": public_release(controller.current),
            "known_good_release": public_release(known_good.release) if known_good else None,
            "quarantined": [
                {"image": q.image, "reason": q.reason, "at": q.at} for q in quarantined
            ],
            "checks": [check.to_dict() for check in view.checks],
            "gates": [
                {
                    "gate": g.gate,
                    "verdict": g.verdict,
                    "condition": str(g.result.condition),
                    "value": g.result.value,
                    "threshold": g.result.threshold,
                    "samples": g.result.samples,
                    "reason": g.result.reason,
                }
                for g in view.gates
            ],
            "incident": controller.incident_id,
            "container_healthy": view.container_healthy,
        }


async def _observe_now(controller: TargetController) -> None:
    await controller.observe_release(time.monotonic())


def _before_step(mirror: StateMirror | None, pause: BeforeStep | None) -> BeforeStep | None:
    """The mirror copies the journal first, so a crash test's pause sees it copied."""
    if mirror is None or pause is None:
        return pause if mirror is None else mirror.before_step

    async def both(index: int, step: Step) -> None:
        await mirror.before_step(index, step)
        await pause(index, step)

    return both


def _swarm_driver(target: TargetConfig, driver: TargetDriver) -> SwarmDriver | None:
    """``driver`` as a SwarmDriver for a swarm target, else None (imported only for one)."""
    if target.kind is not TargetKind.SWARM:
        return None
    from watchdogd.targets.swarm import SwarmDriver  # noqa: PLC0415

    return driver if isinstance(driver, SwarmDriver) else None


def _rebuilt(
    before: TargetConfig | None, after: TargetConfig, controllers: dict[str, TargetController]
) -> bool:
    """Whether a reload gives ``after`` a new controller: a new target, or another kind or
    object watched."""
    if before is None or after.name not in controllers:
        return True
    keys = ("kind", "container", "compose", "swarm", "release_dir")
    return any(getattr(before, k) != getattr(after, k) for k in keys)
