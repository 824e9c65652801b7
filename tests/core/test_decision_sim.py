"""A short run of the decision-quality simulation in benchmarks/decision_sim.py."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SIM_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "decision_sim.py"


@pytest.fixture(scope="module")
def sim() -> Iterator[ModuleType]:
    """The benchmark script, imported by path: benchmarks/ is not a package."""
    spec = importlib.util.spec_from_file_location("decision_sim", SIM_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses looks the module up by name while building classes.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


class TestDecisionSim:
    def test_hard_down_caught_in_three_seconds(self, sim: ModuleType) -> None:
        """At one sample a second a service returning only errors is caught within 3 s."""
        for seed in (1, 2, 3):
            detected = sim.time_to_detect(1, sim.Traffic(error_rate=1.0), seed, horizon=30)
            assert detected is not None
            assert detected <= 3.0

    def test_healthy_hour_has_no_triggers(self, sim: ModuleType) -> None:
        """An hour of healthy traffic at 1 sample a second never breaches."""
        assert sim.simulate_false_triggers(1, 1, seed=1) == 0

    def test_healthy_service_is_not_detected(self, sim: ModuleType) -> None:
        """time_to_detect reports a miss rather than inventing a detection."""
        assert sim.time_to_detect(1, sim.HEALTHY, 1, healthy_for=300, horizon=120) is None
