"""watchdogd's own Prometheus metrics.

Counters and histograms are updated where things happen. Per-target state (windows, gates,
target state, releases) is read at scrape time from the targets' cached snapshots by a custom
collector: a reload that drops a target drops its series with it, and nothing is computed per
probe for the sake of metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from watchdogd import __version__

# Without this every counter doubles its lines with a _created series nobody reads.
disable_created_metrics()  # type: ignore[no-untyped-call]

TARGET_STATES = ("baking", "healthy", "breached", "rolling_back", "rolled_back", "failed", "frozen")
QUANTILES = ("0.5", "0.95", "0.99")


class CheckView(Protocol):
    """What the collector reads of one check's window."""

    @property
    def check(self) -> str: ...
    @property
    def requests(self) -> int: ...
    @property
    def error_ratio(self) -> float | None: ...
    @property
    def quantiles(self) -> Mapping[str, float | None]:
        """Seconds by quantile: ``"0.5"``, ``"0.95"``, ``"0.99"``."""

    @property
    def source_up(self) -> bool: ...


class GateView(Protocol):
    @property
    def gate(self) -> str: ...
    @property
    def breached(self) -> bool: ...
    @property
    def verdict(self) -> str: ...


class TargetView(Protocol):
    """What the collector reads of one target, refreshed by the target's evaluation tick."""

    @property
    def target(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def container_healthy(self) -> bool | None: ...
    @property
    def releases(self) -> Sequence[tuple[str, str]]:
        """(image, state) pairs: current, known_good, quarantined."""

    @property
    def checks(self) -> Sequence[CheckView]: ...
    @property
    def gates(self) -> Sequence[GateView]: ...


class Metrics:
    """Every metric of one daemon, in its own registry (tests run several daemons at once)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge("watchdogd_build_info", "Build information.", ["version"], registry=r).labels(
            __version__
        ).set(1)
        self.probe_duration = Histogram(
            "watchdogd_probe_duration_seconds",
            "Duration of probes, auth flows, scrapes and queries.",
            ["target", "check"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10),
            registry=r,
        )
        self.probes = Counter(
            "watchdogd_probes_total",
            "Observations by result (ok, failure, unknown).",
            ["target", "check", "result"],
            registry=r,
        )
        self.rollbacks = Counter(
            "watchdogd_rollbacks_total",
            "Playbooks run, by trigger (gate, alert, manual, quarantine) and result.",
            ["target", "trigger", "result"],
            registry=r,
        )
        self.rollback_duration = Histogram(
            "watchdogd_rollback_duration_seconds",
            "Time from the start of a playbook to its end.",
            ["target"],
            buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 120, 300),
            registry=r,
        )
        self.last_rollback = Gauge(
            "watchdogd_last_rollback_timestamp_seconds",
            "Unix time of the last finished rollback.",
            ["target"],
            registry=r,
        )
        self.alerts_received = Counter(
            "watchdogd_alerts_received_total",
            "Alerts in Alertmanager webhooks, by alert status.",
            ["status"],
            registry=r,
        )
        self.webhook_rejected = Counter(
            "watchdogd_webhook_rejected_total",
            "Webhook and API requests refused, by reason.",
            ["reason"],
            registry=r,
        )
        self.store_writable = Gauge(
            "watchdogd_store_writable", "1 while the state store accepts writes.", registry=r
        )
        self.store_errors = Counter(
            "watchdogd_store_errors_total", "Failed state store operations.", registry=r
        )
        self.reload_success = Gauge(
            "watchdogd_config_last_reload_successful",
            "1 if the last config (re)load succeeded.",
            registry=r,
        )
        self.reload_failures = Counter(
            "watchdogd_config_reload_failures_total", "Rejected config reloads.", registry=r
        )
        self.task_restarts = Counter(
            "watchdogd_task_restarts_total",
            "Background tasks restarted after a crash.",
            ["task"],
            registry=r,
        )
        self.event_loop_lag = Gauge(
            "watchdogd_event_loop_lag_seconds",
            "How late the last watchdog tick ran.",
            registry=r,
        )
        self.store_writable.set(1)
        self.reload_success.set(1)

    def watch_targets(self, views: Callable[[], Iterable[TargetView]]) -> None:
        """Export per-target state from ``views`` at every scrape."""
        self.registry.register(_TargetCollector(views))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _TargetCollector(Collector):
    def __init__(self, views: Callable[[], Iterable[TargetView]]) -> None:
        self._views = views

    def describe(self) -> Iterable[Metric]:
        return []  # unknown until the first scrape; keeps registration free of side effects

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "watchdogd_target_state",
            "1 for the state each target is in.",
            labels=["target", "state"],
        )
        healthy = GaugeMetricFamily(
            "watchdogd_container_healthy",
            "1 healthy, 0 unhealthy; absent when unknown.",
            labels=["target"],
        )
        release = GaugeMetricFamily(
            "watchdogd_release_info",
            "Releases a target knows: current, known_good, quarantined.",
            labels=["target", "image", "state"],
        )
        requests = GaugeMetricFamily(
            "watchdogd_window_requests",
            "Requests or probes in the check's sliding window.",
            labels=["target", "check"],
        )
        error_ratio = GaugeMetricFamily(
            "watchdogd_window_error_ratio",
            "Errors over requests in the check's sliding window.",
            labels=["target", "check"],
        )
        latency = GaugeMetricFamily(
            "watchdogd_window_latency_seconds",
            "Latency quantiles over the check's sliding window.",
            labels=["target", "check", "quantile"],
        )
        source_up = GaugeMetricFamily(
            "watchdogd_source_up",
            "1 while the check's source can observe its target.",
            labels=["target", "check"],
        )
        breached = GaugeMetricFamily(
            "watchdogd_gate_breached", "1 while a gate is breached.", labels=["target", "gate"]
        )
        unknown = GaugeMetricFamily(
            "watchdogd_gate_unknown",
            "1 while a gate lacks the data to decide.",
            labels=["target", "gate"],
        )
        for view in self._views():
            t = view.target
            for name in TARGET_STATES:
                state.add_metric([t, name], 1.0 if view.state == name else 0.0)
            if view.container_healthy is not None:
                healthy.add_metric([t], 1.0 if view.container_healthy else 0.0)
            for image, release_state in view.releases:
                release.add_metric([t, image, release_state], 1.0)
            for check in view.checks:
                requests.add_metric([t, check.check], float(check.requests))
                source_up.add_metric([t, check.check], 1.0 if check.source_up else 0.0)
                if check.error_ratio is not None:
                    error_ratio.add_metric([t, check.check], check.error_ratio)
                for quantile in QUANTILES:
                    value = check.quantiles.get(quantile)
                    if value is not None:
                        latency.add_metric([t, check.check, quantile], value)
            for gate in view.gates:
                breached.add_metric([t, gate.gate], 1.0 if gate.breached else 0.0)
                unknown.add_metric([t, gate.gate], 1.0 if gate.verdict == "unknown" else 0.0)
        yield from (state, healthy, release, requests, error_ratio, latency, source_up)
        yield from (breached, unknown)
