"""HAProxy's dynamic servers follow their containers when a published port moves.

A container that publishes an engine-chosen host port (``-p 127.0.0.1::8080``, as every green
of ``watchdogd deploy`` does) gets a new one each time it starts again: after an engine restart
or a ``docker restart``. HAProxy would go on sending to the old port and the release, refused
by its own proxy, would be rolled back (the soak found it, issue #16). Every ``FOLLOW_EVERY``
seconds each dynamic server that watchdogd keeps is compared with where its container publishes
now; a server whose container moved is pointed at the new place: in the wanted split (which
sets HAProxy's address and puts it back there after an HAProxy restart), in the deploy's
journal and in the finished deploy record a restarted daemon reads (``Plumbing.want_serving``).

The moments between the container's restart and the re-point are an engine outage's: the
controller and a bake judge nobody for ``RESTART_GRACE`` after the engine returns, which is
longer than ``FOLLOW_EVERY`` plus an inspect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from watchdogd.config.schema import Config, TargetConfig
from watchdogd.core.deploy_plan import FINAL_STAGES, Stage
from watchdogd.deploy import green as containers
from watchdogd.deploy.deployment import Deployment
from watchdogd.deploy.green import Endpoint
from watchdogd.deploy.parts import Side, serving_side
from watchdogd.deploy.proxy import Proxy, Slot
from watchdogd.errors import StoreError, TargetError, TrafficError
from watchdogd.store import Store

if TYPE_CHECKING:
    from watchdogd.engine.docker_api import DockerEngine

log = structlog.get_logger(__name__)

#: Seconds between two looks; each look is one ``inspect`` per followed server.
FOLLOW_EVERY = 2.0


class EndpointFollower:
    def __init__(
        self,
        *,
        config: Callable[[], Config],
        store: Store,
        engine: Callable[[], DockerEngine],
        proxy: Callable[[TargetConfig], Proxy],
        active: dict[str, Deployment],
    ) -> None:
        self._config = config
        self._store = store
        self._engine = engine
        self._proxy = proxy
        self._active = active

    async def look(self) -> None:
        """Re-point every followed server whose container now publishes elsewhere."""
        for target in self._config().targets:
            if target.traffic is None:
                continue
            deployment = self._active.get(target.name)
            try:
                if deployment is not None:
                    await self._follow_deploy(target, deployment)
                else:
                    await self._follow_serving(target)
            except (TargetError, TrafficError) as err:
                # The engine or HAProxy is away: the next look tries again.
                log.debug("deploy_follow_skipped", target=target.name, error=str(err))

    async def _follow_deploy(self, target: TargetConfig, deployment: Deployment) -> None:
        if deployment.stage in FINAL_STAGES:
            return
        # While promoting, blue's name passes to green's container: only green is followed.
        sides = [deployment.green]
        if deployment.stage is not Stage.PROMOTING:
            sides.append(deployment.blue)
        for side in sides:
            slot = side.slot
            if slot is None or not slot.dynamic or not side.container:
                continue
            moved = await self._moved(target, side.container, slot)
            if moved is None:
                continue
            await self._repoint(target, slot, moved)  # raises when HAProxy did not take it
            side.slot = moved  # only then, so that the next look tries again
            try:
                deployment.journal()
            except StoreError as err:
                log.error("deploy_journal_failed", deploy=deployment.id, error=str(err))

    async def _follow_serving(self, target: TargetConfig) -> None:
        proxy = self._proxy(target)
        wanted = proxy.reconciler.wanted(proxy.backend)
        if wanted is None:
            return
        serving = [name for name in wanted.receivers if name in wanted.addresses]
        if not serving:
            return
        container = await containers.blue_container(self._engine(), target)
        for name in serving:
            address, port = wanted.addresses[name]
            slot = Slot(name, Endpoint(address, port))
            moved = await self._moved(target, container, slot)
            if moved is not None:
                await self._repoint(target, slot, moved)
                self._remember(target, moved)

    async def _moved(self, target: TargetConfig, container: str, slot: Slot) -> Slot | None:
        """``slot`` at its container's endpoint now, or None when it has not moved (or the
        container does not publish now: stopped, or the engine is away)."""
        assert target.traffic is not None  # noqa: S101 - only traffic targets are followed
        try:
            now = await containers.endpoint_of(self._engine(), container, target.traffic.upstream)
        except TargetError:
            return None
        return None if now == slot.endpoint else Slot(slot.server, now)

    async def _repoint(self, target: TargetConfig, before: Slot, after: Slot) -> None:
        proxy = self._proxy(target)
        wanted = proxy.reconciler.wanted(proxy.backend)
        if wanted is not None and after.server in wanted.addresses:
            addresses = dict(wanted.addresses)
            addresses[after.server] = (after.endpoint.address, after.endpoint.port)
            await proxy.reconciler.apply(dataclasses.replace(wanted, addresses=addresses))
        log.warning(
            "deploy_server_followed_container",
            target=target.name,
            server=after.server,
            before=str(before.endpoint),
            after=str(after.endpoint),
        )

    def _remember(self, target: TargetConfig, moved: Slot) -> None:
        """Write the new endpoint into the finished deploy whose split a restart wants."""
        try:
            found = serving_side(self._store.deploys(target.name, limit=5))
            if found is None:
                return
            record, side = found
            slot = Side.from_dict(record.body[side]).slot
            if slot is not None and slot.server == moved.server:
                body = {**record.body, side: {**record.body[side], "slot": moved.to_dict()}}
                self._store.rewrite_body(record.id, body)
        except StoreError as err:
            log.error("deploy_follow_not_recorded", target=target.name, error=str(err))
