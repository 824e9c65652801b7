"""Per-release windows of real user traffic, fed by HAProxy's per-request log (or, without a
log socket, by its per-server counters: requests and 5xx, no latency).

Each HAProxy server is one release, so each watched ``(backend, server)`` gets its own window:
the gates judge green on green's requests only, never on a mix with blue's. A request counts
as failed when HAProxy logged a 5xx for it (its own 503/504 for a server that did not answer
included) or no status at all. Only servers a deploy watches get a window, so a busy backend
with many servers costs nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from watchdogd.core.gates import Gate, GateResult, GateSpec, Verdict
from watchdogd.core.window import Window
from watchdogd.deploy.proxy import Proxy
from watchdogd.errors import WatchdogError

log = structlog.get_logger(__name__)

COUNTER_POLL = 0.25


@dataclass
class ServerTraffic:
    window: Window
    requests: int = 0
    errors: int = 0
    last_status: int | None = None


@dataclass
class TrafficWindows:
    """The sink the HAProxy log receiver calls once per request."""

    span: float = 300.0
    _servers: dict[tuple[str, str], ServerTraffic] = field(default_factory=dict)
    unwatched: int = 0

    def watch(self, backend: str, server: str) -> ServerTraffic:
        """Start (or restart, empty) the window of one server."""
        traffic = ServerTraffic(Window(self.span))
        self._servers[(backend, server)] = traffic
        return traffic

    def forget(self, backend: str, server: str) -> None:
        self._servers.pop((backend, server), None)

    def get(self, backend: str, server: str) -> ServerTraffic | None:
        return self._servers.get((backend, server))

    def counts(self, backend: str, server: str, now: float, requests: int, errors: int) -> None:
        """Counter deltas from HAProxy's ``show stat`` (when no log socket is configured)."""
        traffic = self._servers.get((backend, server))
        if traffic is None or requests <= 0:
            return
        errors = min(max(errors, 0), requests)
        traffic.window.add_counts(now, requests, errors)
        traffic.requests += requests
        traffic.errors += errors

    def __call__(
        self, backend: str, server: str, now: float, status: int, response_time_s: float | None
    ) -> None:
        traffic = self._servers.get((backend, server))
        if traffic is None:
            self.unwatched += 1
            return
        ok = 0 < status < 500
        latency = response_time_s if response_time_s is not None and response_time_s >= 0 else None
        traffic.window.add(now, ok, latency)
        traffic.requests += 1
        traffic.errors += 0 if ok else 1
        traffic.last_status = status


@dataclass
class TrafficJudge:
    """The traffic gates of one deploy, over green's window."""

    specs: list[GateSpec]
    gates: list[Gate] = field(init=False)

    def __post_init__(self) -> None:
        self.gates = [Gate(spec) for spec in self.specs]

    def evaluate(self, traffic: ServerTraffic, now: float) -> list[GateResult]:
        stats = traffic.window.stats(now)
        return [gate.evaluate(stats, now) for gate in self.gates]


def breached(results: list[GateResult]) -> GateResult | None:
    return next((r for r in results if r.verdict is Verdict.BREACHED), None)


def pending(results: list[GateResult]) -> bool:
    return any(r.condition is Verdict.BREACHED for r in results)


class CounterFeed:
    """Feeds green's window from HAProxy's per-server counters (``show stat``), for a setup
    without the per-request log: deltas of requests and 5xx, every ``COUNTER_POLL`` s."""

    def __init__(self, proxy: Proxy, windows: TrafficWindows) -> None:
        self._proxy = proxy
        self._windows = windows
        self._last: tuple[int, int] | None = None
        self._due = 0.0

    async def poll(self, server: str, now: float) -> None:
        if now < self._due:
            return
        self._due = now + COUNTER_POLL
        try:
            status = (await self._proxy.reconciler.runtime.servers(self._proxy.backend)).get(server)
        except WatchdogError as err:
            log.debug("deploy.counters_unavailable", error=str(err))
            return  # unknown, not bad
        if status is None:
            return
        totals = (status.requests_total, status.responses_5xx)
        if self._last is not None:
            requests, errors = totals[0] - self._last[0], totals[1] - self._last[1]
            if requests >= 0:
                self._windows.counts(self._proxy.backend, server, now, requests, errors)
        self._last = totals
