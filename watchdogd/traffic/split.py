"""Traffic splits between the servers of one HAProxy backend: applying one without losing a
request, and keeping it in place when HAProxy forgets it.

A :class:`TrafficSplit` names a weight per server. Servers at weight 0 get no traffic: they
are drained, then put in maintenance once idle. :func:`apply_split` goes in the order that
loses no request:

1. every server the split names exists (a dynamic server with a known address is added,
   at weight 0 in maintenance) and points where the split says (its container's published
   port may have moved: ``deploy.follow``);
2. receivers (weight > 0) get their weight, then leave maintenance/drain;
3. at least one receiver must be up (``no check``, or ``UP`` by a health check that ran:
   :attr:`~watchdogd.traffic.haproxy.ServerStatus.confirmed_up`) before anything is drained:
   draining the only healthy server would turn requests into 503s;
4. the other servers are drained (``state drain``, weight 0), HAProxy stops sending them new
   requests while the ones in flight finish; once idle (or after ``drain_timeout``) they go
   to maintenance, except those named in ``standby``: they stay drained at weight 0, where
   HAProxy keeps running their health checks, so a switch back to them goes by a current
   check (HAProxy pauses checks in maintenance and, on leaving it, restores the last result
   from before: a release that died meanwhile would look up until its next check);
5. the result is read back (``show stat``) and compared with the split.

Every step is idempotent, so an attempt that fails anywhere (HAProxy unreachable, a command
refused, a read-back that differs) is retried from step 1 with exponential backoff. After the
last attempt :class:`~watchdogd.errors.TrafficError` is raised: a switch is reported done only
when HAProxy was seen serving it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from watchdogd.errors import TrafficError
from watchdogd.traffic.counters import TrafficCounters
from watchdogd.traffic.haproxy import HAProxyRuntime, ServerStatus

log = structlog.get_logger(__name__)

_UP_POLL = 0.05


@dataclass(frozen=True)
class TrafficSplit:
    """The desired weights of ``backend``'s servers (0..256). Servers not named are left alone.

    ``addresses`` gives ``(address, port)`` for dynamic servers, so a server that HAProxy
    forgot (a restart) or never had is added again; a static server slot needs none.
    ``standby`` names servers at weight 0 that stay drained instead of going to maintenance
    (blue during a bake: switching back to it is then immediate).
    """

    backend: str
    weights: Mapping[str, int]
    addresses: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    standby: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        bad = {name: w for name, w in self.weights.items() if not 0 <= w <= 256}
        if bad:
            raise ValueError(f"weights must be 0..256: {bad}")
        if not self.standby <= set(self.drained):
            raise ValueError(f"standby servers must be at weight 0: {sorted(self.standby)}")
        if not any(self.weights.values()):
            raise ValueError(f"a split of {self.backend} must send traffic to some server")

    @property
    def receivers(self) -> dict[str, int]:
        return {name: w for name, w in self.weights.items() if w > 0}

    @property
    def drained(self) -> list[str]:
        return [name for name, w in self.weights.items() if w == 0]


def split_differences(split: TrafficSplit, servers: Mapping[str, ServerStatus]) -> list[str]:
    """How HAProxy's servers differ from ``split``, one phrase each; empty when in effect."""
    differences: list[str] = []
    for name, weight in split.weights.items():
        status = servers.get(name)
        if status is None:
            differences.append(f"{name}: missing")
            continue
        at = split.addresses.get(name)
        if at is not None and at != (status.address, status.port):
            differences.append(f"{name}: at {status.address}:{status.port}, want {at[0]}:{at[1]}")
        if weight > 0:
            if status.admin_maint or status.admin_drain:
                differences.append(f"{name}: {status.state}, want ready")
            if status.weight != weight:
                differences.append(f"{name}: weight {status.weight}, want {weight}")
        elif name in split.standby:
            if status.admin_maint:
                differences.append(f"{name}: {status.state}, want standby (drained)")
            if status.weight != 0:
                differences.append(f"{name}: weight {status.weight}, want 0")
        elif not status.admin_maint:
            differences.append(f"{name}: {status.state}, want maintenance")
    return differences


async def apply_split(
    runtime: HAProxyRuntime,
    split: TrafficSplit,
    *,
    drain_timeout: float = 10.0,
    ready_timeout: float = 5.0,
    attempts: int = 5,
    backoff: float = 0.1,
    max_backoff: float = 2.0,
    counters: TrafficCounters | None = None,
) -> None:
    """Apply ``split`` (see the module docstring); raise :class:`TrafficError` when it could not
    be applied and verified after ``attempts`` tries."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    delay = backoff
    last = TrafficError(f"switch {split.backend}", "not attempted")
    for attempt in range(1, attempts + 1):
        try:
            await _apply_once(runtime, split, drain_timeout, ready_timeout)
            differences = split_differences(split, await runtime.servers(split.backend))
            if not differences:
                log.info(
                    "traffic_split_applied", backend=split.backend, weights=dict(split.weights)
                )
                return
            last = TrafficError(f"switch {split.backend}", "; ".join(differences))
        except TrafficError as err:
            last = err
        if attempt < attempts:
            if counters is not None:
                counters.switch_retries[split.backend] += 1
            log.warning(
                "traffic_switch_failed_retrying",
                backend=split.backend,
                attempt=attempt,
                error=str(last),
                retry_in=delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)
    if counters is not None:
        counters.switch_failures[split.backend] += 1
    log.error("traffic_switch_failed", backend=split.backend, attempts=attempts, error=str(last))
    raise TrafficError(
        f"switch {split.backend} to {dict(split.weights)}",
        f"not applied after {attempts} attempts: {last.reason}",
        unreachable=last.unreachable,
    )


async def _apply_once(
    runtime: HAProxyRuntime, split: TrafficSplit, drain_timeout: float, ready_timeout: float
) -> None:
    backend = split.backend
    servers = await _place_servers(runtime, split)

    for name, weight in split.receivers.items():
        status = servers[name]
        if status.weight != weight:
            await runtime.set_weight(backend, name, weight)
        if status.admin_maint or status.admin_drain:
            await runtime.set_state(backend, name, "ready")

    standby = [
        name
        for name in split.standby
        if servers[name].weight != 0 or servers[name].admin_maint or not servers[name].admin_drain
    ]
    to_maint = [
        name
        for name in split.drained
        if name not in split.standby and not servers[name].admin_maint
    ]
    if not standby and not to_maint:
        return
    await _wait_receiver_up(runtime, split, ready_timeout)
    for name in [*standby, *to_maint]:
        if not servers[name].admin_drain:
            await runtime.set_state(backend, name, "drain")
        if servers[name].weight != 0:
            await runtime.set_weight(backend, name, 0)
    # From here no new request reaches the drained servers: the switch is effective for users,
    # even though the requests in flight still run.
    log.info("traffic_moved", backend=backend, drained=[*standby, *to_maint])
    idle = await asyncio.gather(
        *(runtime.wait_idle(backend, name, timeout=drain_timeout) for name in to_maint)
    )
    for name, was_idle in zip(to_maint, idle, strict=True):
        if not was_idle:
            # Maintenance does not cut the sessions still open: they finish, nothing new starts.
            log.warning(
                "drain_timeout_maintenance_anyway",
                backend=backend,
                server=name,
                drain_timeout=drain_timeout,
            )
        await runtime.set_state(backend, name, "maint")


async def _place_servers(runtime: HAProxyRuntime, split: TrafficSplit) -> dict[str, ServerStatus]:
    """Step 1: every server the split names exists, at the address the split gives it."""
    backend = split.backend
    servers = await runtime.servers(backend)
    for name in split.weights:
        if name in servers:
            continue
        if name not in split.addresses:
            raise TrafficError(f"switch {backend}", f"no server {name} in backend {backend}")
        address, port = split.addresses[name]
        await runtime.add_server(backend, name, address, port)
        servers = await runtime.servers(backend)
    for name, (address, port) in split.addresses.items():
        status = servers.get(name)
        if status is not None and (status.address, status.port) != (address, port):
            await runtime.set_address(backend, name, address, port)
    return servers


async def _wait_receiver_up(runtime: HAProxyRuntime, split: TrafficSplit, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        servers = await runtime.servers(split.backend)
        if any(servers[name].confirmed_up for name in split.receivers if name in servers):
            return
        if time.monotonic() >= deadline:
            states = ", ".join(
                f"{name} {servers[name].state if name in servers else 'missing'}"
                for name in split.receivers
            )
            raise TrafficError(
                f"switch {split.backend}", f"no receiver is up ({states}): nothing drained"
            )
        await asyncio.sleep(_UP_POLL)


class SplitReconciler:
    """Keeps the desired split of each backend in place on one HAProxy.

    ``want`` records a split; ``reconcile`` reads HAProxy's servers and, when they differ from
    what is wanted (HAProxy restarted and forgot its runtime changes, or someone changed a
    weight by hand), applies the split again, logs why and counts
    ``watchdogd_traffic_restored_total{backend}``. Call it every second or so (``run``).

    Switches made while a reconciler is watching go through :meth:`apply`, which holds the
    backend's lock: the reconciler never "restores" a split that is being replaced.
    """

    def __init__(
        self,
        runtime: HAProxyRuntime,
        *,
        counters: TrafficCounters | None = None,
        drain_timeout: float = 10.0,
        attempts: int = 5,
    ) -> None:
        self.runtime = runtime
        self.counters = counters if counters is not None else TrafficCounters()
        self._drain_timeout = drain_timeout
        self._attempts = attempts
        self._wanted: dict[str, TrafficSplit] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._applied_by: dict[str, str | None] = {}  # backend -> HAProxy's pid when applied
        self._unreachable: set[str] = set()

    def want(self, split: TrafficSplit) -> None:
        self._wanted[split.backend] = split

    def forget(self, backend: str) -> None:
        self._wanted.pop(backend, None)
        self._applied_by.pop(backend, None)
        self._unreachable.discard(backend)

    def wanted(self, backend: str) -> TrafficSplit | None:
        return self._wanted.get(backend)

    async def apply(self, split: TrafficSplit) -> None:
        """Want ``split`` and apply it now (:func:`apply_split`), excluding reconciliation."""
        async with self._lock(split.backend):
            self.want(split)
            await apply_split(
                self.runtime,
                split,
                drain_timeout=self._drain_timeout,
                attempts=self._attempts,
                counters=self.counters,
            )
            self._applied_by[split.backend] = await self._haproxy_pid()

    async def reconcile(self) -> list[str]:
        """Put back every wanted split that HAProxy does not serve; return those backends."""
        restored: list[str] = []
        for backend, split in list(self._wanted.items()):
            lock = self._lock(backend)
            if lock.locked():
                continue  # a switch is under way: it owns the backend
            async with lock:
                if self._wanted.get(backend) is split and await self._restore(split):
                    restored.append(backend)
        return restored

    async def run(self, interval: float = 1.0) -> None:
        """Reconcile every ``interval`` seconds until cancelled."""
        while True:
            await self.reconcile()
            await asyncio.sleep(interval)

    async def _restore(self, split: TrafficSplit) -> bool:
        backend = split.backend
        try:
            differences = split_differences(split, await self.runtime.servers(backend))
        except TrafficError as err:
            if backend not in self._unreachable:
                self._unreachable.add(backend)
                log.error("haproxy_servers_unreadable", backend=backend, error=str(err))
            return False
        if backend in self._unreachable:
            self._unreachable.discard(backend)
            log.info("haproxy_reachable_again", backend=backend)
        if not differences:
            return False
        pid = await self._haproxy_pid()
        reason = self._why_changed(backend, pid)
        log.warning(
            "traffic_split_lost",
            backend=backend,
            reason=reason,
            differences=differences,
            weights=dict(split.weights),
        )
        try:
            await apply_split(
                self.runtime,
                split,
                drain_timeout=self._drain_timeout,
                attempts=self._attempts,
                counters=self.counters,
            )
        except TrafficError:
            return False  # apply_split logged it; the next reconcile tries again
        self._applied_by[backend] = pid
        self.counters.restored[backend] += 1
        log.warning("traffic_split_restored", backend=backend, reason=reason)
        return True

    def _why_changed(self, backend: str, pid: str | None) -> str:
        # Runtime changes live in one HAProxy process: a new worker pid (restart, or a reload
        # without a server-state-file) forgot them; the same pid means someone changed them.
        if backend not in self._applied_by:
            return "not applied yet"
        before = self._applied_by[backend]
        if pid is None or before is None:
            return "unknown"
        return "changed outside watchdogd" if pid == before else "haproxy restarted"

    async def _haproxy_pid(self) -> str | None:
        try:
            return (await self.runtime.info()).get("Pid")
        except TrafficError:
            return None

    def _lock(self, backend: str) -> asyncio.Lock:
        return self._locks.setdefault(backend, asyncio.Lock())
