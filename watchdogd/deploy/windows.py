"""Per-release windows of real user traffic, fed by HAProxy's per-request log (or, without a
log socket, by its per-server counters: requests and 5xx, no latency).

Each HAProxy server is one release, so each watched ``(backend, server)`` gets its own window:
the gates judge green on green's requests only, never on a mix with blue's. A request counts
as failed when HAProxy logged a 5xx for it (its own 503/504 for a server that did not answer
included) or no status at all. Only servers a deploy watches get a window, so a busy backend
with many servers costs nothing here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from watchdogd.config.traffic import TrafficGate
from watchdogd.core.baseline import (
    QUANTILES,
    BaselineSpec,
    Counts,
    LatencyEvidence,
    compare_error_rates,
    compare_latency,
    latency_threshold,
)
from watchdogd.core.gates import Gate, GateResult, Verdict
from watchdogd.core.stats import z_for
from watchdogd.core.window import Window, WindowStats
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

    def watch(
        self,
        backend: str,
        server: str,
        thresholds: Sequence[float] = (),
        span: float | None = None,
    ) -> ServerTraffic:
        """Start (or restart, empty) the window of one server; ``thresholds``: the latencies
        its gates compare with (a window counts the samples above each, see ``core.gates``)."""
        window = Window(span if span is not None else self.span, thresholds=thresholds)
        traffic = ServerTraffic(window)
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


class TrafficJudge:
    """The traffic gates of one deploy: absolute gates over green's window, baseline gates
    comparing green's window with blue's over the same time (``core.baseline``)."""

    def __init__(self, gates: Sequence[TrafficGate]) -> None:
        self._absolute = [Gate(gate.spec()) for gate in gates if not gate.baseline]
        self._baseline = [gate.baseline_spec() for gate in gates if gate.baseline]

    @property
    def compares(self) -> bool:
        return bool(self._baseline)

    def evaluate(
        self, green: ServerTraffic, now: float, blue: ServerTraffic | None = None
    ) -> list[GateResult]:
        """Every gate's result; without ``blue`` (green serves alone) no baseline result."""
        stats = green.window.stats(now)
        results = [gate.evaluate(stats, now) for gate in self._absolute]
        if blue is not None and self._baseline:
            blue_stats = blue.window.stats(now)
            results += [_compared(spec, green.window, stats, blue_stats) for spec in self._baseline]
        return results


def _compared(
    spec: BaselineSpec, green_window: Window, green: WindowStats, blue: WindowStats
) -> GateResult:
    if spec.metric in QUANTILES:
        blue_quantile = getattr(blue, spec.metric.value.removeprefix("latency_"))
        threshold = None if blue_quantile is None else latency_threshold(spec, blue_quantile)
        slow = 0 if threshold is None else green_window.latencies_above(threshold)
        evidence = LatencyEvidence(
            Counts(green.latency_count, slow), blue.latency_count, blue_quantile, threshold
        )
        result = compare_latency(spec, evidence)
        samples = green.latency_count
    else:
        result = compare_error_rates(
            spec, Counts(green.count, green.errors), Counts(blue.count, blue.errors)
        )
        samples = green.count
    return GateResult(
        gate=result.gate,
        verdict=result.verdict,
        condition=result.verdict,
        value=result.z,
        threshold=z_for(spec.confidence),
        reason=result.reason,
        samples=samples,
    )


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
        self._last: dict[str, tuple[int, int]] = {}
        self._due = 0.0

    async def poll(self, servers: Sequence[str], now: float) -> None:
        if now < self._due:
            return
        self._due = now + COUNTER_POLL
        try:
            found = await self._proxy.reconciler.runtime.servers(self._proxy.backend)
        except WatchdogError as err:
            log.debug("deploy_counters_unavailable", error=str(err))
            return  # unknown, not bad
        for server in servers:
            status = found.get(server)
            if status is None:
                continue
            totals = (status.requests_total, status.responses_5xx)
            last = self._last.get(server)
            if last is not None:
                requests, errors = totals[0] - last[0], totals[1] - last[1]
                if requests >= 0:
                    self._windows.counts(self._proxy.backend, server, now, requests, errors)
            self._last[server] = totals
