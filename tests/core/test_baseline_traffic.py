"""Short runs of benchmarks/baseline_traffic.py: the simulation counts right and its gates act."""

from __future__ import annotations

import random
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.support.scripts import benchmark_modules


@pytest.fixture(scope="module")
def sim() -> Iterator[ModuleType]:
    with benchmark_modules("baseline_traffic") as module:
        yield module


def test_a_colour_counts_requests_errors_and_the_window(sim: ModuleType) -> None:
    colour = sim._Colour(2.5, sim.Release(error_rate=1.0), random.Random(1), 4)
    for _ in range(10):
        colour.second()
    assert colour.count == 10  # 4 s x 2.5 requests/s, whole requests only
    assert colour.errors == 10
    assert colour.trailing_run == 25  # every request since the start failed


def test_the_latency_tail_holds_the_share_above_the_cut(sim: ModuleType) -> None:
    colour = sim._Colour(100, sim.HEALTHY, random.Random(2), 300)
    for _ in range(300):
        colour.second()
    share = len(colour.tail) / colour.count
    assert 0.14 < share < 0.16  # TAIL_CUT is the healthy 85th percentile
    assert all(latency > sim.TAIL_CUT for latency in colour.tail)
    p95 = colour.quantile(0.95)
    assert p95 == pytest.approx(0.403, rel=0.05)  # 150 ms * exp(0.6 * 1.645)


def test_identical_releases_do_not_trigger_in_an_hour(sim: ModuleType) -> None:
    run = sim.simulate(100, 0.5, sim.HEALTHY, 3600, seed=1)
    assert (run.baseline_triggers, run.absolute_triggers) == (0, 0)


def test_tripled_errors_are_caught_only_by_the_baseline(sim: ModuleType) -> None:
    run = sim.simulate(100, 0.5, sim.Release(error_rate=0.009), 900, seed=3)
    assert run.baseline_detected is not None
    assert run.absolute_detected is None


def test_slower_latency_is_caught_only_by_the_baseline(sim: ModuleType) -> None:
    slower = sim.Release(latency_median=sim.HEALTHY.latency_median * 1.5)
    run = sim.simulate(100, 0.5, slower, 300, seed=4)
    assert run.baseline_detected is not None
    assert run.absolute_detected is None


def test_a_hard_down_green_is_caught_by_both(sim: ModuleType) -> None:
    run = sim.simulate(10, 0.5, sim.Release(error_rate=1.0), 120, seed=5)
    assert run.absolute_detected is not None
    assert run.baseline_detected is not None


def test_a_trigger_names_the_test_that_fired(sim: ModuleType) -> None:
    errors = sim.simulate(100, 0.5, sim.Release(error_rate=0.009), 900, seed=3, absolute=False)
    assert (errors.rate_triggers, errors.latency_triggers) == (errors.baseline_triggers, 0)
    assert errors.baseline_triggers >= 1
    slower = sim.Release(latency_median=sim.HEALTHY.latency_median * 1.5)
    latency = sim.simulate(100, 0.5, slower, 300, seed=4, absolute=False)
    assert latency.latency_triggers >= 1
    assert latency.absolute_triggers == 0  # absolute=False: those gates were not run
    assert latency.absolute_detected is None
