"""HAProxy as the daemon's deploys keep it: one reconciler per Runtime API socket, the split
each backend must hold (put back after an HAProxy restart), the backend following a container
that an ordinary rollback re-created or whose published port moved (``deploy.follow``), and the
request-log receivers feeding the per-release windows.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from watchdogd.config.schema import Config, TargetConfig
from watchdogd.core.deploy_plan import Stage
from watchdogd.deploy import green as containers
from watchdogd.deploy.deployment import Deployment
from watchdogd.deploy.follow import FOLLOW_EVERY, EndpointFollower
from watchdogd.deploy.green import Endpoint
from watchdogd.deploy.hooks import Announcer
from watchdogd.deploy.parts import Side, serving_side
from watchdogd.deploy.proxy import DYNAMIC_PREFIX, Proxy, Slot
from watchdogd.deploy.windows import TrafficWindows
from watchdogd.errors import StoreError, TargetError
from watchdogd.store import Store
from watchdogd.traffic.counters import TrafficCounters
from watchdogd.traffic.haproxy import HAProxyRuntime
from watchdogd.traffic.log_receiver import HAProxyLogReceiver
from watchdogd.traffic.split import SplitReconciler

if TYPE_CHECKING:
    # Types only: the Docker SDK loads when a deploy touches Docker, not at start (issue #16).
    from watchdogd.engine.docker_api import DockerEngine

log = structlog.get_logger(__name__)

KEEP_INTERVAL = 1.0


class Plumbing:
    def __init__(
        self,
        *,
        config: Callable[[], Config],
        store: Store,
        engine: Callable[[], DockerEngine],
        counters: TrafficCounters,
        windows: TrafficWindows,
        announcer: Announcer,
        active: dict[str, Deployment],
    ) -> None:
        self._config = config
        self._store = store
        self._docker = engine
        self.counters = counters
        self.windows = windows
        self._announcer = announcer
        self._active = active
        self._reconcilers: dict[str, SplitReconciler] = {}
        self._proxies: dict[tuple[str, str], Proxy] = {}
        self._receivers: dict[str, HAProxyLogReceiver] = {}

    def proxy(self, target: TargetConfig) -> Proxy:
        traffic = target.traffic
        assert traffic is not None  # noqa: S101 - callers check
        key = (str(traffic.haproxy.socket), traffic.haproxy.backend)
        if key not in self._proxies:
            self._proxies[key] = Proxy(self._reconciler(target), traffic.haproxy.backend)
        return self._proxies[key]

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
            if target.traffic is None or target.name in self._active:
                continue
            try:
                newest = self._store.deploys(target.name, limit=5)
            except StoreError:
                continue
            found = serving_side(newest)
            if found is None:
                continue
            record, side = found
            serving = Side.from_dict(record.body[side]).slot
            blue = Side.from_dict(record.body["blue"]).slot
            assert serving is not None  # noqa: S101 - serving_side found its slot
            # After a promotion a static blue stays, in maintenance.
            static = [blue] if side == "green" and blue and not blue.dynamic else []
            self.proxy(target).keep(serving, static)

    async def keep(self) -> None:
        """Every second: put back the servers and weights HAProxy lost (a restart)."""
        while True:
            for reconciler in list(self._reconcilers.values()):
                restored = await reconciler.reconcile()
                for backend in restored:
                    self._restored(backend)
            await asyncio.sleep(KEEP_INTERVAL)

    async def follow(self) -> None:
        """Every ``FOLLOW_EVERY`` seconds: servers follow their containers' published ports
        (``deploy.follow``)."""
        follower = EndpointFollower(
            config=self._config,
            store=self._store,
            engine=self._docker,
            proxy=self.proxy,
            active=self._active,
        )
        while True:
            await follower.look()
            await asyncio.sleep(FOLLOW_EVERY)

    def _restored(self, backend: str) -> None:
        for target in self._config().targets:
            if target.traffic is not None and target.traffic.haproxy.backend == backend:
                message = "HAProxy had lost watchdogd's servers and weights; put back"
                deployment = self._active.get(target.name)
                deploy = deployment.id if deployment is not None else None
                self._announcer.audit(target.name, "traffic_restored", message, {}, deploy)

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
        for receiver in self._receivers.values():
            await receiver.close()
        self._receivers.clear()

    async def repoint(self, name: str) -> None:
        """After a re-create outside a deploy (an ordinary rollback): send the backend's
        traffic to the container that now runs, wherever its port is, and remember it."""
        target = self._config().target(name)
        traffic = target.traffic
        assert traffic is not None  # noqa: S101 - only traffic targets have this driver
        engine = self._docker()
        try:
            container = await containers.blue_container(engine, target)
            endpoint = await containers.endpoint_of(engine, container, traffic.upstream)
        except TargetError as err:
            log.error("deploy_repoint_failed", target=name, error=str(err))
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
        log.info("deploy_repointed", target=name, server=server, endpoint=str(endpoint))
