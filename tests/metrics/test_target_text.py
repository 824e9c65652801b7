"""The per-target series are written by hand for speed; they must read exactly as
prometheus_client would have written them, and parse as Prometheus text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from watchdogd.metrics.registry import Metrics
from watchdogd.metrics.target_text import (
    _FAMILIES,
    QUANTILES,
    TARGET_STATES,
    render_targets,
)
from watchdogd.watch.tally import PROBE_BUCKETS, ProbeTally


@dataclass
class Check:
    check: str
    requests: int
    error_ratio: float | None
    quantiles: dict[str, float | None]
    source_up: bool
    tally: ProbeTally = field(default_factory=ProbeTally)


@dataclass
class Gate:
    gate: str
    breached: bool
    verdict: str


@dataclass
class Target:
    target: str
    state: str
    container_healthy: bool | None
    releases: list[tuple[str, str]]
    checks: list[Check]
    gates: list[Gate]


def views() -> list[Target]:
    tally = ProbeTally()
    tally.ok, tally.failure, tally.unknown = 41, 2, 1
    for seconds in (0.004, 0.005, 0.2, 2.5, 11.0):
        tally.observe(seconds)
    return [
        Target(
            "web",
            "healthy",
            True,
            [("app:v1", "current"), ('odd"ref\\', "quarantined")],
            [
                Check("api", 43, 2 / 43, {"0.5": 0.012, "0.95": 0.2, "0.99": None}, True, tally),
                Check("health", 0, None, {"0.5": None, "0.95": None, "0.99": None}, False),
            ],
            [Gate("api:error_rate", True, "breached"), Gate("api:latency_p95", False, "unknown")],
        ),
        Target("batch", "frozen", None, [], [], []),
    ]


class Reference(Collector):
    """The same series built with prometheus_client, as metrics/registry.py used to."""

    def collect(self) -> Iterator[Metric]:
        help_of = {name: text for name, _kind, text in _FAMILIES}
        state = GaugeMetricFamily(
            "watchdogd_target_state", help_of["watchdogd_target_state"], labels=["target", "state"]
        )
        healthy = GaugeMetricFamily(
            "watchdogd_container_healthy",
            help_of["watchdogd_container_healthy"],
            labels=["target"],
        )
        release = GaugeMetricFamily(
            "watchdogd_release_info",
            help_of["watchdogd_release_info"],
            labels=["target", "image", "state"],
        )
        gauges = {
            name: GaugeMetricFamily(name, help_of[name], labels=["target", "check"])
            for name in (
                "watchdogd_window_requests",
                "watchdogd_window_error_ratio",
                "watchdogd_source_up",
            )
        }
        latency = GaugeMetricFamily(
            "watchdogd_window_latency_seconds",
            help_of["watchdogd_window_latency_seconds"],
            labels=["target", "check", "quantile"],
        )
        breached, unknown = (
            GaugeMetricFamily(name, help_of[name], labels=["target", "gate"])
            for name in ("watchdogd_gate_breached", "watchdogd_gate_unknown")
        )
        probes = CounterMetricFamily(
            "watchdogd_probes",
            help_of["watchdogd_probes_total"],
            labels=["target", "check", "result"],
        )
        durations = HistogramMetricFamily(
            "watchdogd_probe_duration_seconds",
            help_of["watchdogd_probe_duration_seconds"],
            labels=["target", "check"],
        )
        for view in views():
            t = view.target
            for name in TARGET_STATES:
                state.add_metric([t, name], 1.0 if view.state == name else 0.0)
            if view.container_healthy is not None:
                healthy.add_metric([t], 1.0 if view.container_healthy else 0.0)
            for image, kind in view.releases:
                release.add_metric([t, image, kind], 1.0)
            for check in view.checks:
                c = check.check
                gauges["watchdogd_window_requests"].add_metric([t, c], float(check.requests))
                gauges["watchdogd_source_up"].add_metric([t, c], float(check.source_up))
                if check.error_ratio is not None:
                    gauges["watchdogd_window_error_ratio"].add_metric([t, c], check.error_ratio)
                for quantile in QUANTILES:
                    value = check.quantiles[quantile]
                    if value is not None:
                        latency.add_metric([t, c, quantile], value)
                tally = check.tally
                for result in ("ok", "failure", "unknown"):
                    probes.add_metric([t, c, result], float(getattr(tally, result)))
                cumulative, buckets = 0, []
                for bound, count in zip((*PROBE_BUCKETS, "+Inf"), tally.buckets, strict=True):
                    cumulative += count
                    le = bound if isinstance(bound, str) else repr(bound)
                    buckets.append((le, float(cumulative)))
                durations.add_metric([t, c], buckets, tally.duration_sum)
            for gate in view.gates:
                breached.add_metric([t, gate.gate], float(gate.breached))
                unknown.add_metric([t, gate.gate], float(gate.verdict == "unknown"))
        yield from (state, healthy, release, gauges["watchdogd_window_requests"])
        yield from (gauges["watchdogd_window_error_ratio"], latency, gauges["watchdogd_source_up"])
        yield from (breached, unknown, probes, durations)


class TestTargetSeries:
    def test_text_equals_prometheus_clients(self) -> None:
        """Every line, HELP and TYPE included, is what generate_latest writes."""
        registry = CollectorRegistry()
        registry.register(Reference())
        assert render_targets(views()) == generate_latest(registry).decode()

    def test_text_parses_and_counts_probes(self) -> None:
        """The text parses as Prometheus exposition; the histogram counts every observation."""
        families = {f.name: f for f in text_string_to_metric_families(render_targets(views()))}
        histogram = families["watchdogd_probe_duration_seconds"]
        api = [s for s in histogram.samples if s.labels["check"] == "api"]
        assert [s.value for s in api if s.name.endswith("_count")] == [5]
        le = {s.labels["le"]: s.value for s in api if s.name.endswith("_bucket")}
        assert (le["0.005"], le["0.25"], le["3.0"], le["10.0"], le["+Inf"]) == (2, 3, 4, 4, 5)

    def test_metrics_render_appends_the_target_series(self) -> None:
        """Metrics.render carries the registry's metrics and then the targets' series."""
        metrics = Metrics()
        metrics.watch_targets(views)
        text = metrics.render().decode()
        assert text.startswith("# HELP watchdogd_build_info")
        assert 'watchdogd_target_state{state="frozen",target="batch"} 1.0' in text
        assert 'watchdogd_probes_total{check="api",result="failure",target="web"} 2.0' in text
