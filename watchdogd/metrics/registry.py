"""watchdogd's own Prometheus metrics.

Counters and histograms are updated where things happen. Per-target series (windows, gates,
target state, releases, probe counts and durations) are read at scrape time from the targets'
views and written by ``target_series``, which is 30 times faster than prometheus_client at
1000 targets: a reload that drops a target drops its series with it, and nothing is computed
per probe for the sake of metrics beyond a few integer increments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from watchdogd import __version__
from watchdogd.metrics.target_text import TargetView, render_targets
from watchdogd.traffic.counters import TrafficCounters

# Without this every counter doubles its lines with a _created series nobody reads.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Every metric of one daemon, in its own registry (tests run several daemons at once)."""

    def rollback_finished(
        self, target: str, trigger: str, result: str, seconds: float, at: float
    ) -> None:
        """Count one playbook's end (``watch.controller.RollbackMetrics``); ``at`` is Unix time."""
        self.rollbacks.labels(target, trigger, result).inc()
        self.rollback_duration.labels(target).observe(seconds)
        self.last_rollback.labels(target).set(at)

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._views: Callable[[], Iterable[TargetView]] | None = None
        r = self.registry
        Gauge("watchdogd_build_info", "Build information.", ["version"], registry=r).labels(
            __version__
        ).set(1)
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
        # The traffic layer's counters (HAProxy switches, reconciler, request log): plain
        # integers its hot path adds to, rendered here at scrape time. Pass this instance to
        # the reconcilers and log receivers.
        self.traffic = TrafficCounters()
        r.register(self.traffic)
        self.store_writable.set(1)
        self.reload_success.set(1)

    def watch_targets(self, views: Callable[[], Iterable[TargetView]]) -> None:
        """Export per-target state from ``views`` at every scrape."""
        self._views = views

    def render(self) -> bytes:
        targets = render_targets(self._views()) if self._views is not None else ""
        return generate_latest(self.registry) + targets.encode()
