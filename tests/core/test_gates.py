"""Gates: window statistics in, verdicts out."""

from __future__ import annotations

import pytest

from watchdogd.core.gates import (
    Gate,
    GateMetric,
    GateResult,
    GateSpec,
    Verdict,
    wilson_lower_bound,
)
from watchdogd.core.window import Window, WindowStats


def make_stats(
    count: int = 0,
    errors: int = 0,
    *,
    latencies: dict[str, float] | None = None,
    latency_count: int | None = None,
    consecutive_failures: int = 0,
    last_ok: bool | None = None,
    last_sample_at: float | None = 0.0,
    last_value: float | None = None,
) -> WindowStats:
    """WindowStats with only the fields a test cares about."""
    lat = latencies or {}
    return WindowStats(
        count=count,
        errors=errors,
        error_ratio=errors / count if count else None,
        latency_count=(count if latencies else 0) if latency_count is None else latency_count,
        p50=lat.get("p50"),
        p95=lat.get("p95"),
        p99=lat.get("p99"),
        mean=lat.get("mean"),
        max=lat.get("max"),
        consecutive_failures=consecutive_failures,
        last_ok=last_ok if last_ok is not None or not count else errors < count,
        last_sample_at=last_sample_at,
        last_value=last_value,
    )


def error_gate(**overrides: object) -> Gate:
    spec = GateSpec(name="traffic:error_rate", metric=GateMetric.ERROR_RATE, above=0.01)
    return Gate(GateSpec(**{**spec.__dict__, **overrides}))


def verdict(gate: Gate, stats: WindowStats, now: float = 0.0) -> Verdict:
    return gate.evaluate(stats, now).verdict


class TestWilsonLowerBound:
    def test_zero_errors(self) -> None:
        """No errors gives a lower bound of exactly zero."""
        assert wilson_lower_bound(0, 500, 0.999) == 0.0

    def test_textbook_value(self) -> None:
        """10 of 100 at z=1.96 matches the published Wilson interval's lower end, 0.0552."""
        assert wilson_lower_bound(10, 100, 0.975) == pytest.approx(0.05522, abs=1e-5)

    def test_all_errors(self) -> None:
        """n of n has the closed form n / (n + z^2)."""
        assert wilson_lower_bound(10, 10, 0.975) == pytest.approx(10 / (10 + 1.959964**2))

    def test_below_observed_ratio(self) -> None:
        """The lower bound sits below the observed ratio and rises with confidence lowered."""
        strict = wilson_lower_bound(30, 1000, 0.999)
        loose = wilson_lower_bound(30, 1000, 0.9)
        assert 0.0 < strict < loose < 0.03

    @pytest.mark.parametrize(("errors", "n"), [(-1, 10), (11, 10)])
    def test_rejects_impossible_counts(self, errors: int, n: int) -> None:
        """More errors than samples (or negative errors) is a caller bug."""
        with pytest.raises(ValueError, match="errors"):
            wilson_lower_bound(errors, n, 0.99)


@pytest.mark.parametrize("metric", [GateMetric.ERROR_RATE, GateMetric.FAILURE_RATE])
class TestRates:
    def gate(self, metric: GateMetric, **overrides: object) -> Gate:
        return error_gate(metric=metric, **overrides)

    def test_one_of_sixty_is_ok(self, metric: GateMetric) -> None:
        """One failure out of 60 (1.7 %) is not evidence of more than 1 %."""
        result = self.gate(metric).evaluate(make_stats(60, 1), 0.0)
        assert (result.verdict, result.value, result.samples) == (Verdict.OK, 1 / 60, 60)
        assert f"only 1 of the {GateSpec.min_errors} errors needed" in result.reason

    def test_significant_excess_breaches(self, metric: GateMetric) -> None:
        """40 errors out of 800 (5 %) breaches a 1 % gate and says why."""
        result = self.gate(metric).evaluate(make_stats(800, 40), 0.0)
        assert result.verdict is Verdict.BREACHED
        assert result.threshold == 0.01
        assert "Wilson lower bound" in result.reason
        assert "> 1% over 800 samples" in result.reason

    def test_excess_without_significance_is_ok(self, metric: GateMetric) -> None:
        """4 errors in 200 (2 %) is above 1 % but not significantly, even without min_errors."""
        result = self.gate(metric, min_errors=0).evaluate(make_stats(200, 4), 0.0)
        assert result.verdict is Verdict.OK
        assert "<= 1% over 200 samples" in result.reason

    def test_min_errors(self, metric: GateMetric) -> None:
        """A significant bound still needs min_errors errors."""
        stats = make_stats(20, 2)
        assert wilson_lower_bound(2, 20, GateSpec.confidence) > 0.01
        assert verdict(self.gate(metric, min_errors=3), stats) is Verdict.OK
        assert verdict(self.gate(metric, min_errors=2), stats) is Verdict.BREACHED

    def test_too_few_samples_is_unknown(self, metric: GateMetric) -> None:
        """Below min_samples the gate cannot judge."""
        assert verdict(self.gate(metric), make_stats(19, 10)) is Verdict.UNKNOWN

    def test_no_samples_is_unknown(self, metric: GateMetric) -> None:
        """An empty window is unknown, even with min_samples 0."""
        assert verdict(self.gate(metric, min_samples=0), make_stats()) is Verdict.UNKNOWN

    def test_hard_down_fast_path(self, metric: GateMetric) -> None:
        """Three failures in a row breach at once, below min_samples."""
        result = self.gate(metric).evaluate(make_stats(3, 3, consecutive_failures=3), 0.0)
        assert result.verdict is Verdict.BREACHED
        assert "3 consecutive failures" in result.reason

    def test_two_failures_are_not_hard_down(self, metric: GateMetric) -> None:
        """A shorter run than consecutive_failures waits for min_samples."""
        stats = make_stats(2, 2, consecutive_failures=2)
        assert verdict(self.gate(metric), stats) is Verdict.UNKNOWN

    def test_fast_path_disabled_by_zero(self, metric: GateMetric) -> None:
        """consecutive_failures=0 turns the fast path off."""
        stats = make_stats(5, 5, consecutive_failures=5)
        assert verdict(self.gate(metric, consecutive_failures=0), stats) is Verdict.UNKNOWN

    def test_busy_window_needs_a_longer_run(self, metric: GateMetric) -> None:
        """In 6000 samples a run of 3 at 1 % is likely by chance; a run of 4 is not."""
        gate = self.gate(metric)
        assert verdict(gate, make_stats(6000, 30, consecutive_failures=3)) is Verdict.OK
        assert verdict(gate, make_stats(6000, 31, consecutive_failures=4)) is Verdict.BREACHED

    def test_from_a_real_window(self, metric: GateMetric) -> None:
        """A window fed 1 % errors at 1/s stays OK; a hard-down service breaches in 3 samples."""
        window = Window()
        gate = self.gate(metric)
        for t in range(300):
            window.add(float(t), ok=t % 100 != 0)
        assert verdict(gate, window.stats(299.5), 299.5) is Verdict.OK
        for t in range(300, 303):
            window.add(float(t), ok=False)
        assert verdict(gate, window.stats(302.5), 302.5) is Verdict.BREACHED


class TestLatency:
    @pytest.mark.parametrize(
        ("metric", "field"),
        [
            (GateMetric.LATENCY_P50, "p50"),
            (GateMetric.LATENCY_P95, "p95"),
            (GateMetric.LATENCY_P99, "p99"),
            (GateMetric.LATENCY_MEAN, "mean"),
            (GateMetric.LATENCY_MAX, "max"),
        ],
    )
    def test_reads_its_own_statistic(self, metric: GateMetric, field: str) -> None:
        """Each latency metric compares its own statistic against the threshold."""
        gate = Gate(GateSpec(name="lat", metric=metric, above=2.0))
        slow = {
            name: (3.0 if name == field else 0.1) for name in ("p50", "p95", "p99", "mean", "max")
        }
        fast = {name: (0.1 if name == field else 3.0) for name in slow}
        slow_result = gate.evaluate(make_stats(50, latencies=slow), 0.0)
        assert (slow_result.verdict, slow_result.value) == (Verdict.BREACHED, 3.0)
        assert verdict(gate, make_stats(50, latencies=fast)) is Verdict.OK

    def test_too_few_latencies_is_unknown(self) -> None:
        """Below min_samples latencies the gate cannot judge, however slow they are."""
        gate = Gate(GateSpec(name="lat", metric=GateMetric.LATENCY_P95, above=2.0))
        stats = make_stats(100, latencies={"p95": 9.0}, latency_count=19)
        assert verdict(gate, stats) is Verdict.UNKNOWN

    def test_reason_names_numbers(self) -> None:
        """The reason carries the statistic, the threshold and the sample count."""
        gate = Gate(GateSpec(name="lat", metric=GateMetric.LATENCY_P95, above=2.0))
        result = gate.evaluate(make_stats(40, latencies={"p95": 2.5}), 0.0)
        assert result.reason == "latency p95 2.5 s > 2 s over 40 samples"


class TestUnhealthy:
    def gate(self, for_: float = 0.0) -> Gate:
        return Gate(GateSpec(name="health", metric=GateMetric.UNHEALTHY, for_=for_))

    def test_one_failed_sample_breaches(self) -> None:
        """The last sample decides; min_samples does not apply."""
        stats = make_stats(1, 1, last_ok=False, consecutive_failures=1)
        assert verdict(self.gate(), stats) is Verdict.BREACHED

    def test_healthy(self) -> None:
        """A passing last sample is OK even after earlier failures."""
        assert verdict(self.gate(), make_stats(10, 9, last_ok=True)) is Verdict.OK

    def test_no_sample_is_unknown(self) -> None:
        """Without a health sample nothing is known."""
        assert verdict(self.gate(), make_stats()) is Verdict.UNKNOWN

    def test_for_waits(self) -> None:
        """for_ makes an unhealthy container wait before it counts."""
        gate = self.gate(for_=10.0)
        stats = make_stats(1, 1, last_ok=False)
        assert [verdict(gate, stats, t) for t in (0.0, 9.0, 10.0)] == [
            Verdict.UNKNOWN,
            Verdict.UNKNOWN,
            Verdict.BREACHED,
        ]


class TestValue:
    def test_above(self) -> None:
        """A reading above the upper limit breaches."""
        gate = Gate(GateSpec(name="q", metric=GateMetric.VALUE, above=2.0))
        assert verdict(gate, make_stats(last_value=2.5)) is Verdict.BREACHED
        assert verdict(gate, make_stats(last_value=2.0)) is Verdict.OK

    def test_below(self) -> None:
        """A reading below the lower limit breaches and reports that limit."""
        gate = Gate(GateSpec(name="q", metric=GateMetric.VALUE, above=10.0, below=1.0))
        result = gate.evaluate(make_stats(last_value=0.5), 0.0)
        assert (result.verdict, result.threshold) == (Verdict.BREACHED, 1.0)
        assert verdict(gate, make_stats(last_value=5.0)) is Verdict.OK

    def test_no_value_is_unknown(self) -> None:
        """Without a reading the gate cannot judge."""
        gate = Gate(GateSpec(name="q", metric=GateMetric.VALUE, above=2.0))
        assert verdict(gate, make_stats(100, 100)) is Verdict.UNKNOWN


class TestMissingData:
    def test_source_down_is_unknown(self) -> None:
        """A down source gives UNKNOWN even when the last numbers were terrible."""
        stats = make_stats(100, 100, consecutive_failures=100)
        result = error_gate().evaluate(stats, 0.0, source_up=False)
        assert (result.verdict, result.condition) == (Verdict.UNKNOWN, Verdict.UNKNOWN)
        assert result.reason == "data source is down"

    def test_source_down_resets_for_timer(self) -> None:
        """A down source restarts the for_ clock."""
        gate = error_gate(for_=10.0)
        bad = make_stats(100, 50)
        assert gate.evaluate(bad, 0.0).verdict is Verdict.UNKNOWN
        assert gate.evaluate(bad, 5.0, source_up=False).verdict is Verdict.UNKNOWN
        assert gate.evaluate(bad, 6.0).verdict is Verdict.UNKNOWN
        assert gate.evaluate(bad, 15.0).verdict is Verdict.UNKNOWN
        assert gate.evaluate(bad, 16.0).verdict is Verdict.BREACHED

    def test_stale_samples_are_unknown(self) -> None:
        """Samples older than max_staleness count as no data."""
        gate = error_gate(max_staleness=30.0)
        stats = make_stats(100, 50, last_sample_at=100.0)
        assert verdict(gate, stats, 130.0) is Verdict.BREACHED
        assert verdict(gate, stats, 131.0) is Verdict.UNKNOWN

    def test_staleness_without_any_sample(self) -> None:
        """A window that never saw a sample is unknown under max_staleness."""
        gate = error_gate(max_staleness=30.0)
        assert verdict(gate, make_stats(last_sample_at=None)) is Verdict.UNKNOWN

    @pytest.mark.parametrize(
        "spec",
        [
            GateSpec(name="e", metric=GateMetric.ERROR_RATE, above=0.0, min_samples=0),
            GateSpec(name="l", metric=GateMetric.LATENCY_MAX, above=0.0, min_samples=0),
            GateSpec(name="h", metric=GateMetric.UNHEALTHY),
            GateSpec(name="v", metric=GateMetric.VALUE, above=0.0, below=0.0),
        ],
    )
    def test_empty_window_never_breaches(self, spec: GateSpec) -> None:
        """No metric breaches on an empty window, whatever its thresholds."""
        result = Gate(spec).evaluate(Window().stats(0.0), 0.0)
        assert result.verdict is Verdict.UNKNOWN


class TestFor:
    def test_breaches_after_holding(self) -> None:
        """The verdict turns BREACHED once the condition has held for for_ seconds."""
        gate = error_gate(for_=30.0)
        bad = make_stats(100, 50)
        results = [gate.evaluate(bad, t) for t in (100.0, 120.0, 129.9, 130.0, 200.0)]
        assert [r.verdict for r in results] == [Verdict.UNKNOWN] * 3 + [Verdict.BREACHED] * 2
        assert {r.condition for r in results} == {Verdict.BREACHED}
        assert "pending for 20 s of 30 s" in results[1].reason

    @pytest.mark.parametrize("interruption", [make_stats(100, 0), make_stats(5, 5)])
    def test_ok_or_unknown_resets(self, interruption: WindowStats) -> None:
        """An OK or UNKNOWN condition restarts the wait."""
        gate = error_gate(for_=30.0)
        bad = make_stats(100, 50)
        gate.evaluate(bad, 0.0)
        gate.evaluate(interruption, 20.0)
        assert verdict(gate, bad, 25.0) is Verdict.UNKNOWN
        assert verdict(gate, bad, 54.0) is Verdict.UNKNOWN
        assert verdict(gate, bad, 55.0) is Verdict.BREACHED

    def test_reset(self) -> None:
        """reset() forgets a pending breach."""
        gate = error_gate(for_=30.0)
        bad = make_stats(100, 50)
        gate.evaluate(bad, 0.0)
        gate.reset()
        assert verdict(gate, bad, 30.0) is Verdict.UNKNOWN
        assert verdict(gate, bad, 60.0) is Verdict.BREACHED

    def test_zero_for_breaches_at_once(self) -> None:
        """Without for_ the verdict is the condition."""
        assert verdict(error_gate(), make_stats(100, 50)) is Verdict.BREACHED


class TestGateSpec:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"metric": GateMetric.ERROR_RATE}, "needs above"),
            ({"metric": GateMetric.LATENCY_P95}, "needs above"),
            ({"metric": GateMetric.LATENCY_P95, "above": 1.0, "below": 0.1}, "only for value"),
            ({"metric": GateMetric.VALUE}, "above or below"),
            ({"metric": GateMetric.ERROR_RATE, "above": 0.01, "confidence": 1.0}, "confidence"),
            ({"metric": GateMetric.ERROR_RATE, "above": 0.01, "for_": -1.0}, ">= 0"),
        ],
    )
    def test_rejects_nonsense(self, kwargs: dict[str, object], message: str) -> None:
        """Specs that cannot be evaluated fail at construction, naming the gate."""
        with pytest.raises(ValueError, match=message):
            GateSpec(name="g", **kwargs)  # type: ignore[arg-type]

    def test_result_is_a_value(self) -> None:
        """Results compare by value, so they can be logged and diffed."""
        first = error_gate().evaluate(make_stats(60, 1), 0.0)
        second = error_gate().evaluate(make_stats(60, 1), 0.0)
        assert first == second
        assert isinstance(first, GateResult)
