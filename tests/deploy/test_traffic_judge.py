"""The traffic gates of a deploy on plain windows: absolute gates on green alone, baseline
gates on green against blue over the same time (no HAProxy, no Docker: pure values)."""

from __future__ import annotations

import random

from watchdogd.config.traffic import TrafficGate
from watchdogd.core.gates import GateMetric, Verdict
from watchdogd.core.window import Window
from watchdogd.deploy.windows import ServerTraffic, TrafficJudge

GATES = [
    TrafficGate(metric=GateMetric.ERROR_RATE, above=0.01),
    TrafficGate(metric=GateMetric.LATENCY_P95, above=2.0),
    TrafficGate(metric=GateMetric.ERROR_RATE, compare="baseline", tolerance=0.5),
    TrafficGate(metric=GateMetric.LATENCY_P95, compare="baseline", tolerance=0.2),
]


def traffic(seed: int, seconds: int, rate: int, error_ratio: float, median: float) -> ServerTraffic:
    """``rate`` requests a second for ``seconds``, lognormal latency around ``median``."""
    rng = random.Random(seed)
    window = Window(300.0, thresholds=(2.0,))  # the absolute latency gate's threshold
    served = ServerTraffic(window)
    for second in range(seconds):
        for k in range(rate):
            ok = rng.random() >= error_ratio
            window.add(second + k / rate, ok, median * rng.lognormvariate(0.0, 0.4))
            served.requests += 1
    return served


def verdicts(green: ServerTraffic, blue: ServerTraffic | None, now: float) -> dict[str, Verdict]:
    return {r.gate: r.verdict for r in TrafficJudge(GATES).evaluate(green, now, blue)}


def test_identical_releases_are_ok_on_every_gate() -> None:
    blue = traffic(1, 120, 50, 0.003, 0.1)
    green = traffic(2, 120, 50, 0.003, 0.1)
    assert set(verdicts(green, blue, 120.0).values()) == {Verdict.OK}


def test_a_slower_green_breaches_only_the_baseline_latency_gate() -> None:
    blue = traffic(1, 120, 50, 0.0, 0.1)
    green = traffic(2, 120, 50, 0.0, 0.3)  # three times slower, far under 2 s
    found = verdicts(green, blue, 120.0)
    assert found["traffic:latency_p95:baseline"] is Verdict.BREACHED
    assert found["traffic:latency_p95"] is Verdict.OK
    assert found["traffic:error_rate:baseline"] is Verdict.OK


def test_tripled_errors_under_the_absolute_threshold_breach_the_baseline() -> None:
    blue = traffic(3, 300, 100, 0.003, 0.1)
    green = traffic(4, 300, 100, 0.009, 0.1)  # 0.3 % -> 0.9 %: never above 1 %
    found = verdicts(green, blue, 300.0)
    assert found["traffic:error_rate:baseline"] is Verdict.BREACHED
    assert found["traffic:error_rate"] is not Verdict.BREACHED


def test_too_little_blue_is_unknown_and_no_blue_means_no_baseline() -> None:
    green = traffic(5, 60, 50, 0.0, 0.1)
    sparse_blue = traffic(6, 2, 5, 0.0, 0.1)
    found = verdicts(green, sparse_blue, 60.0)
    assert found["traffic:latency_p95:baseline"] is Verdict.UNKNOWN
    assert found["traffic:error_rate:baseline"] is Verdict.UNKNOWN
    alone = verdicts(green, None, 60.0)  # green at 100 %: blue serves nothing
    assert set(alone) == {"traffic:error_rate", "traffic:latency_p95"}


def test_latencies_above_never_counts_more_than_the_truth() -> None:
    window = Window(300.0)
    latencies = [0.1 * (1 + i / 100) for i in range(300)]
    for i, latency in enumerate(latencies):
        window.add(i / 10, True, latency)
    window.stats(30.0)
    for threshold in (0.1, 0.15, 0.2, 0.25, 0.3):
        assert window.latencies_above(threshold) <= sum(1 for x in latencies if x > threshold)
        assert window.latencies_above(threshold) >= sum(
            1 for x in latencies if x > threshold * 1.03
        )
