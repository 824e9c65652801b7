"""The daemon's deploys: start one, report on it, resume what a crash interrupted, keep HAProxy
holding the weights watchdogd set (an HAProxy restart forgets them), and feed the per-release
windows from HAProxy's log.

One manager per daemon. It knows the targets' controllers (for the playbook and the serving
release), the Docker engine, the store and the notifiers; the rest is in ``Deployment``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog
from prometheus_client import CollectorRegistry, Counter

from watchdogd.config.schema import Config, Defaults, Notifier, TargetConfig, TargetKind
from watchdogd.core.deploy_plan import Stage, resume_action
from watchdogd.core.guards import TriggerKind
from watchdogd.core.incident import TargetState
from watchdogd.deploy import green as containers
from watchdogd.deploy.deployment import Deployment, Hooks, Side
from watchdogd.deploy.driver import TrafficDriver
from watchdogd.deploy.green import Endpoint
from watchdogd.deploy.proxy import DYNAMIC_PREFIX, Proxy, Slot
from watchdogd.deploy.windows import TrafficWindows
from watchdogd.engine.docker_api import DockerEngine
from watchdogd.errors import (
    ControlRefused,
    StepFailed,
    StoreError,
    TargetError,
    TrafficError,
    WatchdogError,
)
from watchdogd.model import Release, Trigger
from watchdogd.playbook.notify import send
from watchdogd.sources.probe_client import ProbeClient
from watchdogd.store import Store
from watchdogd.store.deploys import DeployRecord
from watchdogd.targets.base import TargetDriver
from watchdogd.traffic.counters import TrafficCounters
from watchdogd.traffic.haproxy import HAProxyRuntime
from watchdogd.traffic.log_receiver import HAProxyLogReceiver
from watchdogd.traffic.split import SplitReconciler

if TYPE_CHECKING:
    from watchdogd.watch.controller import TargetController

log = structlog.get_logger(__name__)

KEEP_INTERVAL = 1.0
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"


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
    ) -> None:
        self._config = config
        self._store = store
        self._docker = engine
        self._client = client
        self._http = http
        self.windows = TrafficWindows()
        self.active: dict[str, Deployment] = {}
        self._tasks: dict[str, asyncio.Task[Stage]] = {}
        self._controllers: dict[str, TargetController] = {}
        self._proxies: dict[tuple[str, str], Proxy] = {}
        self._receivers: dict[str, HAProxyLogReceiver] = {}
        self._reconcilers: dict[str, SplitReconciler] = {}
        self.counters = counters
        self.deploys_total = Counter(
            "watchdogd_deploys",
            "Blue-green deploys by outcome (promoted, rolled_back, aborted, failed).",
            ["target", "outcome"],
            registry=registry,
        )

    # --- wiring ------------------------------------------------------------------------------

    def wrap(self, target: TargetConfig, driver: TargetDriver) -> TargetDriver:
        if target.traffic is None:
            return driver
        name = target.name

        async def repoint() -> None:
            await self.repoint(name)

        return TrafficDriver(driver, self._docker(), lambda: self.active.get(name), repoint)

    def attach(self, controller: TargetController) -> None:
        self._controllers[controller.name] = controller

    def _target(self, name: str) -> TargetConfig:
        try:
            return self._config().target(name)
        except KeyError:
            raise ControlRefused(404, f"no target named {name!r}") from None

    def proxy(self, target: TargetConfig) -> Proxy:
        traffic = target.traffic
        assert traffic is not None  # noqa: S101 - callers check
        key = (str(traffic.haproxy.socket), traffic.haproxy.backend)
        if key not in self._proxies:
            self._proxies[key] = Proxy(self._reconciler(target), traffic.haproxy.backend)
        return self._proxies[key]

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
            blue_name = await self._blue_container(target)
            blue_release = await containers.release_in(self._docker(), target.name, blue_name)
            endpoint = await containers.endpoint_of(self._docker(), blue_name, traffic.upstream)
        except TargetError as err:
            raise ControlRefused(503, f"cannot read blue: {err}") from err
        if blue_release is None:
            raise ControlRefused(409, f"blue container {blue_name} does not exist")
        proxy = self.proxy(target)
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
            stop_timeout=float(target.setting("stop_timeout", defaults)),
            secrets=self._config().secrets,
            blue=Side(blue_name, blue_release, Slot(server, endpoint)),
        )

    async def _blue_container(self, target: TargetConfig) -> str:
        if target.kind is TargetKind.CONTAINER and target.container:
            return target.container
        if target.kind is TargetKind.COMPOSE and target.compose is not None:
            labels = {
                COMPOSE_PROJECT: target.compose.project,
                COMPOSE_SERVICE: target.compose.service,
            }
            names = [
                str(n).lstrip("/")
                for c in await self._docker().list_containers(labels)
                for n in (c.get("Names") or [])[:1]
                if c.get("State") == "running"
            ]
            names = [n for n in names if "-wd-" not in n and containers.GREEN_MARK not in n]
            if len(names) != 1:
                raise TargetError(
                    f"a blue-green deploy needs exactly one running replica of "
                    f"{target.compose.project}/{target.compose.service}, found {len(names)}"
                )
            return names[0]
        raise TargetError(f"target {target.name} is not a container or compose target")

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

    # --- what a deploy asks of the daemon ----------------------------------------------------

    def _hooks(self, name: str) -> Hooks:
        def controller() -> TargetController | None:
            return self._controllers.get(name)

        async def start_playbook(reason: str, numbers: dict[str, Any]) -> str | None:
            found = controller()
            deployment = self.active.get(name)
            if found is None or deployment is None or deployment.blue.release is None:
                return "no controller"
            gate = str(numbers.get("gate") or "traffic")
            trigger = Trigger(
                "gate", gate, reason, {k: v for k, v in numbers.items() if v is not None}
            )
            try:
                await found.request(trigger, TriggerKind.GATE, to=deployment.blue.release.id)
            except ControlRefused as err:
                return err.message
            return None

        def playbook_running() -> bool:
            found = controller()
            return found is not None and found.playbook_task is not None

        async def observe() -> None:
            found = controller()
            if found is not None:
                await found.observe_release(time.monotonic())

        async def mark_known_good(release: Release) -> None:
            try:
                self._store.record_release(release)
                self._store.mark_known_good(name, release.id)
            except StoreError as err:
                log.error("deploy.known_good_failed", target=name, error=str(err))
            found = controller()
            if found is not None:
                found.refresh_catalogue()

        async def notify(event: str, text: str, numbers: dict[str, Any]) -> None:
            await self._notify(name, event, text, numbers)

        return Hooks(
            start_playbook=start_playbook,
            playbook_running=playbook_running,
            observe=observe,
            notify=notify,
            mark_known_good=mark_known_good,
        )

    async def _notify(self, target: str, event: str, text: str, numbers: dict[str, Any]) -> None:
        http = self._http()
        deployment = self.active.get(target)
        self._audit(target, event, text, numbers, deployment)
        if http is None:
            return
        payload = {
            "event": event,
            "target": target,
            "deploy": deployment.id if deployment else None,
            "image": deployment.image if deployment else None,
            "stage": deployment.stage.value if deployment else None,
            "numbers": numbers,
            "message": text,
            "title": f"watchdogd: {event.replace('_', ' ')} {target}",
            "text": text + "".join(f"\n{k}: {v}" for k, v in sorted(numbers.items())),
            "at": time.time(),
        }
        notifiers: list[Notifier] = list(self._config().notify)
        for notifier in notifiers:
            try:
                await send(notifier, payload, http)
            except StepFailed as err:
                log.warning("deploy.notify_failed", notifier=notifier.name, error=err.reason)

    def _audit(
        self,
        target: str,
        event: str,
        text: str,
        numbers: dict[str, Any],
        deployment: Deployment | None,
    ) -> None:
        data = dict(numbers, deploy=deployment.id if deployment else None)
        try:
            self._store.audit(event, text, target=target, data=data)
        except StoreError as err:
            log.error("cannot write the audit log", target=target, error=str(err))

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
            log.error("cannot read open deploys", error=str(err))
            return
        for record in records:
            try:
                await self._resume_one(record)
            except WatchdogError as err:
                log.error("deploy.resume_failed", deploy=record.id, error=str(err))

    async def _resume_one(self, record: DeployRecord) -> None:
        try:
            target = self._config().target(record.target)
        except KeyError:
            log.error("open deploy for a target no longer configured", target=record.target)
            return
        if target.traffic is None:
            log.error("open deploy for a target without traffic:", target=record.target)
            return
        defaults = self._config().defaults
        deployment = Deployment(
            target=target,
            image=record.image,
            engine=self._docker(),
            store=self._store,
            proxy=self.proxy(target),
            windows=self.windows,
            client=self._client,
            hooks=self._hooks(target.name),
            bake_time=_bake_time(target, defaults),
            stop_timeout=float(target.setting("stop_timeout", defaults)),
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
            "resuming an interrupted deploy",
            target=target.name,
            deploy=record.id,
            stage=record.stage,
            action=str(action),
        )
        self.active[target.name] = deployment
        await deployment.say(f"watchdogd restarted at stage {record.stage}: {action.value}")
        self._run(deployment, deployment.resume(action))

    async def repoint(self, name: str) -> None:
        """After a re-create outside a deploy (an ordinary rollback): send the backend's
        traffic to the container that now runs, wherever its port is, and remember it."""
        target = self._target(name)
        traffic = target.traffic
        assert traffic is not None  # noqa: S101 - only traffic targets have this driver
        engine = self._docker()
        try:
            container = await self._blue_container(target)
            endpoint = await containers.endpoint_of(engine, container, traffic.upstream)
        except TargetError as err:
            log.error("deploy.repoint_failed", target=name, error=str(err))
            return
        proxy = self.proxy(target)
        servers = await proxy.reconciler.runtime.servers(traffic.haproxy.backend)
        server = await proxy.find(endpoint) or f"{DYNAMIC_PREFIX}{secrets.token_hex(3)}"
        slot = Slot(server, endpoint)
        others = [
            Slot(n, Endpoint(s.address, s.port))
            for n, s in servers.items()
            if n != server and s.address and s.port
        ]
        await proxy.switch(slot, others)
        static = [o for o in others if not o.dynamic]
        proxy.keep(slot, static)
        for other in others:
            if other.dynamic:
                await proxy.remove(other)
        self._store.save_deploy(
            str(uuid.uuid4()),
            target=name,
            image="(re-created by a rollback)",
            stage=Stage.PROMOTED.value,
            reason="a rollback outside a deploy re-created the container; HAProxy follows it",
            body={
                "blue": {"container": container},
                "green": {"container": container, "slot": slot.to_dict()},
            },
        )
        log.info("deploy.repointed", target=name, server=server, endpoint=str(endpoint))

    # --- keeping HAProxy right --------------------------------------------------------------

    def _reconciler(self, target: TargetConfig) -> SplitReconciler:
        traffic = target.traffic
        assert traffic is not None  # noqa: S101 - callers check
        path = str(traffic.haproxy.socket)
        if path not in self._reconcilers:
            self._reconcilers[path] = SplitReconciler(
                HAProxyRuntime(path, timeout=traffic.haproxy.timeout),
                counters=self.counters,
                drain_timeout=traffic.drain_timeout,
                attempts=traffic.switch_attempts,
            )
        return self._reconcilers[path]

    def want_serving(self) -> None:
        """After a start: want the split the newest finished deploy left, so that an HAProxy
        restart puts it back (deploys in flight want their own)."""
        for target in self._config().targets:
            if target.traffic is None or target.name in self.active:
                continue
            try:
                newest = self._store.deploys(target.name, limit=5)
            except StoreError:
                continue
            for record in newest:
                blue = Side.from_dict(record.body["blue"])
                green = Side.from_dict(record.body["green"])
                proxy = self.proxy(target)
                if record.stage == Stage.PROMOTED.value and green.slot is not None:
                    static = [blue.slot] if blue.slot and not blue.slot.dynamic else []
                    proxy.keep(green.slot, static)
                    break
                if record.stage in (Stage.ROLLED_BACK.value, Stage.ABORTED.value) and blue.slot:
                    proxy.keep(blue.slot, [])
                    break

    async def keep(self) -> None:
        """Every second: put back the servers and weights HAProxy lost (a restart)."""
        while True:
            for reconciler in list(self._reconcilers.values()):
                restored = await reconciler.reconcile()
                for backend in restored:
                    self._restored(backend)
            await asyncio.sleep(KEEP_INTERVAL)

    def _restored(self, backend: str) -> None:
        for target in self._config().targets:
            if target.traffic is not None and target.traffic.haproxy.backend == backend:
                message = "HAProxy had lost watchdogd's servers and weights; put back"
                self._audit(
                    target.name, "traffic_restored", message, {}, self.active.get(target.name)
                )

    # --- the log -----------------------------------------------------------------------------

    async def open(self) -> None:
        for target in self._config().targets:
            traffic = target.traffic
            if traffic is None or traffic.haproxy.log_socket is None:
                continue
            path = str(traffic.haproxy.log_socket)
            if path in self._receivers:
                continue
            receiver = HAProxyLogReceiver(
                path,
                self.windows,
                counters=self.counters.log,
                runtime=HAProxyRuntime(traffic.haproxy.socket, timeout=traffic.haproxy.timeout),
            )
            await receiver.start()
            self._receivers[path] = receiver

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for receiver in self._receivers.values():
            await receiver.close()
        self._receivers.clear()


def _view(record: DeployRecord) -> dict[str, Any]:
    body = record.body
    return {
        **record.to_dict(),
        "lines": list(body.get("lines") or []),
        "numbers": dict(body.get("numbers") or {}),
        "blue": (body.get("blue") or {}).get("container"),
        "green": (body.get("green") or {}).get("container"),
    }


def _label(release: Release | None) -> str:
    return release.label if release is not None else "-"


def _bake_time(target: TargetConfig, defaults: Defaults) -> float:
    assert target.traffic is not None  # noqa: S101 - only traffic targets deploy
    own = target.traffic.bake_time
    return float(own if own is not None else target.setting("bake_time", defaults))
