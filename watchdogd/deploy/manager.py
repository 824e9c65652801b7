"""The daemon's deploys: start one, report on it, resume what a crash interrupted.

One manager per daemon. It knows the targets' controllers (for the playbook and the serving
release), the Docker engine, the store and the notifiers; one deploy's stages are in
``deployment``, HAProxy's upkeep (reconcilers, log receivers) in ``plumbing``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from watchdogd.config.schema import Config, Defaults, TargetConfig
from watchdogd.config.settings import resolve
from watchdogd.core.deploy_plan import Stage, resume_action
from watchdogd.core.incident import TargetState
from watchdogd.deploy import green as containers
from watchdogd.deploy.bake import Order
from watchdogd.deploy.deployment import Deployment
from watchdogd.deploy.driver import TrafficDriver
from watchdogd.deploy.hooks import Announcer, daemon_hooks
from watchdogd.deploy.parts import Hooks, Side
from watchdogd.deploy.plumbing import Plumbing
from watchdogd.deploy.proxy import Slot
from watchdogd.deploy.windows import TrafficWindows
from watchdogd.errors import (
    ControlRefused,
    NotSingleReplica,
    StoreError,
    TargetError,
    TrafficError,
    WatchdogError,
)
from watchdogd.model import Release
from watchdogd.sources.probe_client import ProbeClient
from watchdogd.store import Store
from watchdogd.store.deploys import DeployRecord
from watchdogd.targets.base import TargetDriver
from watchdogd.traffic.counters import TrafficCounters

if TYPE_CHECKING:
    # Types only: the Docker SDK loads when a deploy touches Docker, not at start (issue #16).
    from watchdogd.engine.docker_api import DockerEngine
    from watchdogd.watch.controller import TargetController

log = structlog.get_logger(__name__)


class DeployManager:
    def __init__(
        self,
        *,
        config: Callable[[], Config],
        store: Store,
        engine: Callable[[], DockerEngine],
        registry: CollectorRegistry,
        counters: TrafficCounters,
        client: Callable[[], ProbeClient],
        http: Callable[[], aiohttp.ClientSession | None],
        controllers: Mapping[str, TargetController],
    ) -> None:
        self._config = config
        self._store = store
        self._docker = engine
        self._client = client
        self._http = http
        self.windows = TrafficWindows()
        self.active: dict[str, Deployment] = {}
        self._tasks: dict[str, asyncio.Task[Stage]] = {}
        # The wiring's own live mapping: a target dropped by a reload is gone from it, so
        # nothing here keeps its controller alive.
        self._controllers = controllers
        self._announcer = Announcer(store, lambda: list(config().notify), http)
        self.plumbing = Plumbing(
            config=config,
            store=store,
            engine=engine,
            counters=counters,
            windows=self.windows,
            announcer=self._announcer,
            active=self.active,
        )
        self.deploys_total = Counter(
            "watchdogd_deploys",
            "Blue-green deploys by outcome (promoted, rolled_back, aborted, failed).",
            ["target", "outcome"],
            registry=registry,
        )
        traffic_targets = lambda: [t.name for t in config().targets if t.traffic]  # noqa: E731
        registry.register(_StepGauges(self.active, traffic_targets))

    # --- wiring ------------------------------------------------------------------------------

    def wrap(self, target: TargetConfig, driver: TargetDriver) -> TargetDriver:
        if target.traffic is None:
            return driver
        name = target.name

        async def repoint() -> None:
            await self.plumbing.repoint(name)

        return TrafficDriver(driver, self._docker(), lambda: self.active.get(name), repoint)

    def _target(self, name: str) -> TargetConfig:
        try:
            return self._config().target(name)
        except KeyError:
            raise ControlRefused(404, f"no target named {name!r}") from None

    def _hooks(self, name: str) -> Hooks:
        return daemon_hooks(
            name,
            controllers=self._controllers,
            active=self.active,
            store=self._store,
            announcer=self._announcer,
        )

    # --- the daemon's life cycle ------------------------------------------------------------

    async def open(self) -> None:
        await self.plumbing.open()

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await self.plumbing.close()

    # --- starting a deploy ---------------------------------------------------------------------

    async def deploy(self, name: str, image: str) -> dict[str, Any]:
        """Check that a deploy may start, journal it and start it; raises ``ControlRefused``
        (422 for a usage or config problem, 409 for a refusal, 503 when HAProxy or Docker
        cannot be reached) with nothing changed."""
        target = self._target(name)
        if target.traffic is None:
            raise ControlRefused(
                422, f"target {name} has no traffic: section; see docs/blue-green.md"
            )
        if name in self.active:
            raise ControlRefused(409, f"a deploy of {name} is running ({self.active[name].id})")
        controller = self._controllers.get(name)
        if controller is not None and controller.machine.state in (
            TargetState.ROLLING_BACK,
            TargetState.FROZEN,
            TargetState.FAILED,
        ):
            raise ControlRefused(409, f"{name} is {controller.machine.state}; not deploying now")
        try:
            found = await containers.resolve_image(self._docker(), image)
        except TargetError as err:
            raise ControlRefused(422, str(err)) from err
        refusal = self._quarantine_reason(name, containers.image_keys(found) | {image})
        if refusal is not None:
            raise ControlRefused(409, refusal)
        deployment = await self._new_deployment(target, image)
        self.active[name] = deployment
        deployment.journal()
        await deployment.say(f"deploying {image} to {name}; blue is {deployment.blue.container}")
        await deployment.hooks.notify(
            "deploy_started",
            f"deploying {image} (blue: {_label(deployment.blue.release)})",
            {},
        )
        self._run(deployment, deployment.run())
        return {"deploy": self._record(deployment.id)}

    async def _new_deployment(self, target: TargetConfig, image: str) -> Deployment:
        traffic = target.traffic
        assert traffic is not None  # noqa: S101 - checked by the caller
        try:
            blue_name = await containers.blue_container(self._docker(), target)
            blue_release = await containers.release_in(self._docker(), target, blue_name)
            endpoint = await containers.endpoint_of(self._docker(), blue_name, traffic.upstream)
        except NotSingleReplica as err:
            raise ControlRefused(409, str(err)) from err
        except TargetError as err:
            raise ControlRefused(503, f"cannot read blue: {err}") from err
        if blue_release is None:
            raise ControlRefused(409, f"blue container {blue_name} does not exist")
        proxy = self.plumbing.proxy(target)
        try:
            server = await proxy.find(endpoint)
        except TrafficError as err:
            raise ControlRefused(503, f"cannot reach HAProxy: {err}") from err
        if server is None:
            raise ControlRefused(
                422,
                f"no server of HAProxy backend {traffic.haproxy.backend} points at blue "
                f"({blue_name} at {endpoint}); see docs/blue-green.md",
            )
        defaults = self._config().defaults
        return Deployment(
            target=target,
            image=image,
            engine=self._docker(),
            store=self._store,
            proxy=proxy,
            windows=self.windows,
            client=self._client,
            hooks=self._hooks(target.name),
            bake_time=_bake_time(target, defaults),
            stop_timeout=resolve(target, defaults).stop_timeout,
            secrets=self._config().secrets,
            blue=Side(blue_name, blue_release, Slot(server, endpoint)),
        )

    def _quarantine_reason(self, target: str, keys: set[str]) -> str | None:
        try:
            for entry in self._store.quarantined(target):
                if entry.image in keys:
                    return (
                        f"image {entry.image} is quarantined for {target}: {entry.reason}; "
                        f"clear it with `watchdogd unquarantine {target} {entry.image}`"
                    )
        except StoreError as err:
            return f"cannot read the quarantine: {err}"
        return None

    def _run(self, deployment: Deployment, work: Any) -> None:
        name = deployment.target.name

        async def run() -> Stage:
            try:
                await work
            finally:
                if self.active.get(name) is deployment and deployment.stage.value in (
                    "promoted",
                    "rolled_back",
                    "aborted",
                    "failed",
                ):
                    del self.active[name]
                    self.deploys_total.labels(name, deployment.stage.value).inc()
            return deployment.stage

        self._tasks[deployment.id] = asyncio.create_task(run(), name=f"deploy:{name}")

    # --- an operator's orders ----------------------------------------------------------------

    def control(self, name: str, order: str) -> dict[str, Any]:
        """Pause, resume, promote or abort the target's running deploy (``deploy.bake``);
        ``ControlRefused`` (404 unknown target or order, 409 nothing to order) changes nothing."""
        self._target(name)
        try:
            wanted = Order(order)
        except ValueError:
            known = ", ".join(o.value for o in Order)
            raise ControlRefused(404, f"no order {order!r}; orders are {known}") from None
        deployment = self.active.get(name)
        if deployment is None:
            raise ControlRefused(409, f"no deploy of {name} is running")
        said = deployment.order(wanted)
        log.warning("deploy_order", target=name, deploy=deployment.id, order=wanted.value)
        return {"deploy": self._record(deployment.id), "result": said}

    def progress(self, name: str) -> dict[str, Any] | None:
        """The running deploy of ``name`` as status shows it, or None."""
        deployment = self.active.get(name)
        if deployment is None:
            return None
        bake = deployment.baking.progress() if deployment.baking is not None else None
        return {"id": deployment.id, "stage": deployment.stage.value, "bake": bake}

    # --- reading ---------------------------------------------------------------------------

    def _record(self, deploy_id: str) -> dict[str, Any]:
        record = self._store.deploy(deploy_id)
        if record is None:
            raise ControlRefused(404, f"no deploy {deploy_id}")
        return _view(record)

    def status(self, name: str, deploy_id: str | None) -> dict[str, Any]:
        self._target(name)
        if deploy_id is not None:
            record = self._store.deploy(deploy_id)
            if record is None or record.target != name:
                raise ControlRefused(404, f"no deploy {deploy_id} of {name}")
            return {"deploy": _view(record)}
        newest = self._store.deploys(name, limit=1)
        return {"deploy": _view(newest[0]) if newest else None}

    # --- after a crash ---------------------------------------------------------------------

    async def resume(self) -> None:
        """Resume or roll back every deploy a crash left open (before any new decision)."""
        try:
            records = self._store.open_deploys()
        except StoreError as err:
            log.error("deploy_open_unreadable", error=str(err))
            return
        for record in records:
            try:
                await self._resume_one(record)
            except WatchdogError as err:
                log.error("deploy_resume_failed", deploy=record.id, error=str(err))

    async def _resume_one(self, record: DeployRecord) -> None:
        try:
            target = self._config().target(record.target)
        except KeyError:
            log.error("deploy_open_for_unknown_target", target=record.target)
            return
        if target.traffic is None:
            log.error("deploy_open_for_target_without_traffic", target=record.target)
            return
        defaults = self._config().defaults
        deployment = Deployment(
            target=target,
            image=record.image,
            engine=self._docker(),
            store=self._store,
            proxy=self.plumbing.proxy(target),
            windows=self.windows,
            client=self._client,
            hooks=self._hooks(target.name),
            bake_time=_bake_time(target, defaults),
            stop_timeout=resolve(target, defaults).stop_timeout,
            secrets=self._config().secrets,
            blue=Side.from_dict(record.body["blue"]),
            green=Side.from_dict(record.body["green"]),
            id=record.id,
            stage=Stage(record.stage),
            reason=record.reason,
            lines=list(record.body.get("lines") or []),
            numbers=dict(record.body.get("numbers") or {}),
        )
        green_exists = bool(deployment.green.container) and await containers.exists(
            self._docker(), deployment.green.container
        )
        blue_exists = await containers.exists(self._docker(), deployment.blue.container)
        action = resume_action(deployment.stage, green_exists=green_exists, blue_exists=blue_exists)
        log.warning(
            "deploy_resuming",
            target=target.name,
            deploy=record.id,
            stage=record.stage,
            action=str(action),
        )
        self.active[target.name] = deployment
        await deployment.say(f"watchdogd restarted at stage {record.stage}: {action.value}")
        self._run(deployment, deployment.resume(action))


class _StepGauges(Collector):
    """Green's weight and step of every running deploy, read when /metrics is scraped."""

    def __init__(self, active: Mapping[str, Deployment], targets: Callable[[], list[str]]) -> None:
        self._active = active
        self._targets = targets

    def collect(self) -> Any:
        weight = GaugeMetricFamily(
            "watchdogd_deploy_green_weight",
            "Green's share of the requests in percent during a deploy (0: none running).",
            labels=["target"],
        )
        step = GaugeMetricFamily(
            "watchdogd_deploy_step",
            "The running deploy's step, 1-based (0: none running or not yet switched).",
            labels=["target"],
        )
        for name in sorted(set(self._targets()) | set(self._active)):
            deployment = self._active.get(name)
            bake = deployment.baking if deployment is not None else None
            serving = (
                bake is not None and deployment is not None and deployment.stage is Stage.BAKING
            )
            weight.add_metric([name], bake.step.weight if serving and bake else 0)
            step.add_metric([name], bake.index + 1 if serving and bake else 0)
        yield weight
        yield step


def _view(record: DeployRecord) -> dict[str, Any]:
    body = record.body
    return {
        **record.to_dict(),
        "lines": list(body.get("lines") or []),
        "numbers": dict(body.get("numbers") or {}),
        "bake": body.get("bake"),
        "blue": (body.get("blue") or {}).get("container"),
        "green": (body.get("green") or {}).get("container"),
    }


def _label(release: Release | None) -> str:
    return release.label if release is not None else "-"


def _bake_time(target: TargetConfig, defaults: Defaults) -> float:
    assert target.traffic is not None  # noqa: S101 - only traffic targets deploy
    own = target.traffic.bake_time
    return float(own if own is not None else resolve(target, defaults).bake_time)
