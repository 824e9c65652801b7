"""The traffic layer's counters, and their Prometheus form.

The hot path (a log line every 0.2 ms at 5000 requests/s) only adds to plain integers; nothing
here costs anything until a scrape. :class:`TrafficCounters` is a prometheus_client collector:
``watchdogd.metrics.registry.Metrics`` creates the daemon's one instance as ``metrics.traffic``
and registers it; pass it to every ``SplitReconciler(counters=...)`` and ``apply_split(...,
counters=...)``, and its ``.log`` to every ``HAProxyLogReceiver(counters=...)``. The series
on ``/metrics``:

* ``watchdogd_traffic_restored_total{backend}``: splits put back by the reconciler (HAProxy
  restarted, or someone changed the weights);
* ``watchdogd_traffic_switch_retries_total{backend}``, ``watchdogd_traffic_switch_failures_total
  {backend}``: attempts of :func:`~watchdogd.traffic.split.apply_split` that failed and were
  retried; switches that failed for good (raised);
* ``watchdogd_traffic_log_datagrams_total{result}``: datagrams read from the log socket, by
  result: ``request`` (parsed and passed on), ``event`` (HAProxy's own messages),
  ``malformed`` (not in the documented format);
* ``watchdogd_traffic_log_sink_errors_total``: parsed requests the consumer failed on (a bug:
  logged once);
* ``watchdogd_traffic_log_dropped_total``: log lines HAProxy could not send to watchdogd's
  socket (its queue was full, or nobody listened): HAProxy's ``DroppedLogs``, read over the
  Runtime API, counted from the receiver's start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric


@dataclass
class LogCounters:
    """What the log receiver saw. ``received`` = ``parsed + events + malformed``;
    ``sink_errors`` are parsed lines the consumer raised on; ``dropped`` never arrived."""

    received: int = 0
    parsed: int = 0
    events: int = 0
    malformed: int = 0
    sink_errors: int = 0
    dropped: int = 0


@dataclass(eq=False)  # a collector is registered by identity: it must stay hashable
class TrafficCounters:
    log: LogCounters = field(default_factory=LogCounters)
    restored: Counter[str] = field(default_factory=Counter)
    switch_retries: Counter[str] = field(default_factory=Counter)
    switch_failures: Counter[str] = field(default_factory=Counter)

    def collect(self) -> Iterator[Metric]:
        yield _by_backend(
            "watchdogd_traffic_restored",
            "Traffic splits put back after HAProxy restarted or was changed by someone else.",
            self.restored,
        )
        yield _by_backend(
            "watchdogd_traffic_switch_retries",
            "Failed attempts at a traffic switch that were retried.",
            self.switch_retries,
        )
        yield _by_backend(
            "watchdogd_traffic_switch_failures",
            "Traffic switches that could not be applied and verified.",
            self.switch_failures,
        )
        datagrams = CounterMetricFamily(
            "watchdogd_traffic_log_datagrams",
            "Datagrams read from the HAProxy log socket, by result.",
            labels=["result"],
        )
        for result, value in (
            ("request", self.log.parsed),
            ("event", self.log.events),
            ("malformed", self.log.malformed),
        ):
            datagrams.add_metric([result], value)
        yield datagrams
        yield CounterMetricFamily(
            "watchdogd_traffic_log_sink_errors",
            "Parsed request lines the consumer raised on.",
            value=self.log.sink_errors,
        )
        yield CounterMetricFamily(
            "watchdogd_traffic_log_dropped",
            "Log lines HAProxy could not deliver to watchdogd (its DroppedLogs).",
            value=self.log.dropped,
        )


def _by_backend(name: str, documentation: str, values: Counter[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["backend"])
    for backend, value in sorted(values.items()):
        family.add_metric([backend], value)
    return family
