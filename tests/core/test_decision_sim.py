"""A short run of the decision-quality simulation in benchmarks/decision_sim.py: the same
engine and shapes, a few seeds and minutes instead of hundreds and days."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.support.scripts import benchmark_modules


@pytest.fixture(scope="module")
def sim() -> Iterator[ModuleType]:
    with benchmark_modules("decision_sim") as module:
        yield module


def detect(sim: ModuleType, bad: object, feed: object, seed: int, **kw: object) -> float | None:
    step = sim.Step(sim.HEALTHY, bad, 300.0)
    outcome = sim.simulate(step, feed, 420.0, seed, change=300.0, **kw)
    assert outcome.false_triggers == 0
    return outcome.detected


class TestDecisionSim:
    def test_hard_down_is_caught_within_seconds(self, sim: ModuleType) -> None:
        """Refused connections at one probe a second are hard down within 2.5 s."""
        for seed in (1, 2, 3):
            detected = detect(sim, sim.REFUSING, sim.PROBE_3S, seed)
            assert detected is not None
            assert detected <= 2.5

    def test_slow_release_is_caught_by_the_fast_path(self, sim: ModuleType) -> None:
        """50 ms -> 3 s at one probe a second: nearly every request slow, caught in seconds
        (waiting probes are evidence before their answer)."""
        detected = detect(sim, sim.SLOW_3S, sim.PROBE_5S, 1)
        assert detected is not None
        assert detected < 10.0

    def test_near_threshold_heavy_tail_hour_is_quiet(self, sim: ModuleType) -> None:
        """A true p95 of 1.6 s (lognormal sigma 1.5) against a 2 s gate: no trigger in an hour
        of requests, probes or scraped histograms with the default buckets."""
        for feed in (sim.requests(5), sim.PROBE, sim.scrape(5)):
            assert sim.simulate(sim.SIGMA15, feed, 3600.0, 7).false_triggers == 0

    def test_error_bursts_are_not_outages(self, sim: ModuleType) -> None:
        """Ten errors inside half a second every 15 minutes at 20/s never breach."""
        assert sim.simulate(sim.BURSTS, sim.requests(20), 1900.0, 3).false_triggers == 0

    def test_warm_up_is_not_judged(self, sim: ModuleType) -> None:
        """A release slow for its first 20 s is not rolled back with warmup: 30s; without
        warm-up it is."""
        assert sim.simulate(sim.WARM, sim.requests(5), 300.0, 1, warmup=30.0).false_triggers == 0
        assert sim.simulate(sim.WARM, sim.requests(5), 300.0, 1).false_triggers >= 1

    def test_healthy_service_is_not_detected(self, sim: ModuleType) -> None:
        """A step to the same healthy service reports a miss rather than a detection."""
        assert detect(sim, sim.HEALTHY, sim.PROBE_3S, 1) is None

    def test_haproxy_log_drops_are_not_errors(self, sim: ModuleType) -> None:
        """Green judged on HAProxy's log through the receiver: losing half the lines, or every
        line for 5 s a minute, never breaches a healthy release; 5 % errors still do."""
        for feed in (sim.log(50, drop=0.5), sim.log(50, drop_bursts=(60.0, 5.0))):
            assert sim.simulate(sim.SIGMA1, feed, 240.0, 2).false_triggers == 0
            bad = sim.simulate(sim.Lognormal(errors=0.05), feed, 240.0, 2, change=0.0)
            assert bad.detected is not None
            assert "error ratio" in bad.reasons[0]

    def test_haproxy_log_sees_a_slow_release(self, sim: ModuleType) -> None:
        """Green's window counts latencies above its gates' threshold: 3 s answers breach
        latency_p95 > 2s by the fast path."""
        outcome = sim.simulate(sim.SLOW_3S, sim.log(50), 60.0, 1, change=0.0)
        assert outcome.detected is not None
        assert "nearly every request is slow" in outcome.reasons[0]

    def test_counter_reset_is_not_a_breach(self, sim: ModuleType) -> None:
        """An app restart zeroes its counters and misses a minute of scrapes: no breach."""
        feed = sim.Feed("scrape", rate=20.0, interval=15.0, resets=600.0)
        assert sim.simulate(sim.SIGMA1, feed, 1300.0, 4).false_triggers == 0

    def test_tables_are_data(self, sim: ModuleType) -> None:
        """Every row of every table summarises its own quick run (rows can be added)."""
        table = sim.Table("one row", [sim.DETECTION.rows[0]])
        [(title, [(_row, (text, _target, passed))])] = sim.run_tables(
            [table], full=False, workers=1
        )
        assert title == "one row"
        assert "median" in text
        assert passed is True
