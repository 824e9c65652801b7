"""What a deploy asks of HAProxy, on top of ``watchdogd.traffic``: find blue's server, switch
to green, switch back, remove a retired server, and keep wanting the split that serves now.

Every switch goes through the backend's ``SplitReconciler.apply``: the weight changes come in
the order that loses no request, are verified by reading them back, and are retried; when
HAProxy stays unreachable it raises ``TrafficError``, and the deploy says so loudly instead of
reporting a switch it did not make. The reconciler also keeps wanting the last split, so when
HAProxy restarts and forgets its runtime changes, the servers and weights come back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from watchdogd.core.deploy_plan import FULL_WEIGHT, canary_weights
from watchdogd.deploy.green import Endpoint
from watchdogd.errors import TrafficError
from watchdogd.traffic.split import SplitReconciler, TrafficSplit

log = structlog.get_logger(__name__)

# Servers watchdogd adds are named so; others come from HAProxy's config file (static).
DYNAMIC_PREFIX = "wd-"


@dataclass(frozen=True)
class Slot:
    """A release's server in the backend."""

    server: str
    endpoint: Endpoint

    @property
    def dynamic(self) -> bool:
        return self.server.startswith(DYNAMIC_PREFIX)

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, **self.endpoint.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Slot:
        return cls(str(data["server"]), Endpoint.from_dict(data))


def split_for(
    backend: str, serving: Slot, others: list[Slot], *, standby: bool = False
) -> TrafficSplit:
    """All of the backend's traffic to ``serving``; ``others`` drained, then in maintenance,
    or kept drained and health-checked (``standby``: blue during a bake, so that a switch
    back to it is immediate)."""
    weights = {slot.server: 0 for slot in others}
    weights[serving.server] = 100
    addresses = {
        slot.server: (slot.endpoint.address, slot.endpoint.port)
        for slot in (serving, *others)
        if slot.dynamic
    }
    spare = frozenset(slot.server for slot in others) if standby else frozenset()
    return TrafficSplit(backend, weights, addresses, spare)


def weighted_split(backend: str, green: Slot, blue: Slot, green_weight: int) -> TrafficSplit:
    """A canary step: ``green_weight`` % of new requests to green, the rest to blue."""
    green_share, blue_share = canary_weights(green_weight)
    weights = {green.server: green_share, blue.server: blue_share}
    addresses = {
        slot.server: (slot.endpoint.address, slot.endpoint.port)
        for slot in (green, blue)
        if slot.dynamic
    }
    return TrafficSplit(backend, weights, addresses)


class Proxy:
    """One HAProxy backend, through the reconciler of its Runtime API socket."""

    def __init__(self, reconciler: SplitReconciler, backend: str) -> None:
        self.reconciler = reconciler
        self.backend = backend

    async def find(self, endpoint: Endpoint) -> str | None:
        """The server of the backend that points at ``endpoint``."""
        servers = await self.reconciler.runtime.servers(self.backend)
        for name, status in servers.items():
            if status.address == endpoint.address and status.port == endpoint.port:
                return name
        return None

    async def switch(self, serving: Slot, others: list[Slot], *, standby: bool = False) -> None:
        """Every request to ``serving``; raises ``TrafficError`` when not applied and verified."""
        await self.reconciler.apply(split_for(self.backend, serving, others, standby=standby))

    async def share(self, green: Slot, blue: Slot, green_weight: int) -> None:
        """Green at ``green_weight`` %, blue the rest (100 %: blue kept on standby)."""
        if green_weight >= FULL_WEIGHT:
            await self.switch(green, [blue], standby=True)
            return
        await self.reconciler.apply(weighted_split(self.backend, green, blue, green_weight))

    def keep(self, serving: Slot, others: list[Slot]) -> None:
        """Want this split from now on (put back after an HAProxy restart), without applying."""
        self.reconciler.want(split_for(self.backend, serving, others))

    async def remove(self, slot: Slot) -> None:
        """Delete a retired dynamic server (a static one stays, in maintenance). The wanted
        split must no longer name it, or it would be added back."""
        if not slot.dynamic:
            return
        try:
            await self.reconciler.runtime.delete_server(self.backend, slot.server)
        except TrafficError as err:
            log.info("haproxy_server_not_deleted", server=slot.server, reason=str(err))
