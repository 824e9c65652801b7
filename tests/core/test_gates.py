"""Gates: window statistics in, verdicts out."""

from __future__ import annotations

import dataclasses

import pytest

from watchdogd.core.gates import (
    LATENCY_LOOKS,
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
    run_span: float | None = None,
) -> WindowStats:
    """WindowStats with only the fields a test cares about. Samples and errors are spread
    evenly over a 300 s window; a failure run is one sample a second unless ``run_span``."""
    lat = latencies or {}
    per_second = [[0, 0, 0] for _ in range(300)]
    for i in range(count):
        per_second[i % 300][0] += 1
    for i in range(errors):
        per_second[i % 300][1] += 1
    span = float(max(0, consecutive_failures - 1)) if run_span is None else run_span
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
        run_started_at=0.0 if consecutive_failures else None,
        run_last_at=span if consecutive_failures else None,
        counts_by_second=tuple(n for n, _, _ in per_second),
        errors_by_second=tuple(e for _, e, _ in per_second),
        latencies_by_second=(0,) * 300,
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
        """Three failures in a row over 2 s breach at once, below min_samples."""
        result = self.gate(metric).evaluate(make_stats(3, 3, consecutive_failures=3), 0.0)
        assert result.verdict is Verdict.BREACHED
        assert "3 consecutive failures over 2 s (hard down)" in result.reason

    def test_a_burst_is_not_hard_down(self, metric: GateMetric) -> None:
        """Ten failures inside one second are a burst: hard down needs 1.5 s of failures."""
        burst = make_stats(10, 10, consecutive_failures=10, run_span=0.5)
        assert verdict(self.gate(metric), burst) is Verdict.UNKNOWN
        longer = make_stats(10, 10, consecutive_failures=10, run_span=1.5)
        assert verdict(self.gate(metric), longer) is Verdict.BREACHED

    def test_burst_in_a_second_is_clipped(self, metric: GateMetric) -> None:
        """200 errors inside one second of a 6000-sample window do not make a trend: one
        second adds at most max(2, 3 x 1 % x its samples) errors to the share test."""
        stats = make_stats(6000, 20)
        counts, errors = list(stats.counts_by_second), list(stats.errors_by_second)
        counts[-1] += 200
        errors[-1] += 200
        burst = dataclasses.replace(
            stats,
            count=6200,
            errors=220,
            counts_by_second=tuple(counts),
            errors_by_second=tuple(errors),
        )
        assert verdict(self.gate(metric), burst) is Verdict.OK

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


def latency_window(fast: int, slow: int, *, slow_every: int = 7) -> Window:
    """One sample a second: ``fast`` of 0.1 s and ``slow`` of 3 s, the slow ones spread out
    (every ``slow_every``-th sample) so that no run of them takes the fast path."""
    window = Window(span=600.0, thresholds=(2.0,))
    t = 0
    left_fast, left_slow = fast, slow
    while left_fast or left_slow:
        is_slow = left_slow and (t % slow_every == 0 or not left_fast)
        window.add(float(t), ok=True, latency=3.0 if is_slow else 0.1)
        left_slow -= bool(is_slow)
        left_fast -= not is_slow
        t += 1
    return window


def latency_gate(metric: GateMetric = GateMetric.LATENCY_P95, **overrides: object) -> Gate:
    return Gate(GateSpec(name="lat", metric=metric, above=2.0, **overrides))  # type: ignore[arg-type]


class TestLatency:
    def test_p95_is_a_share_with_a_margin(self) -> None:
        """p95 above 2 s is "more than 5 % of latencies above 2 s", convincingly: 13 of 230
        (5.7 %) puts the window's p95 above 2 s but does not breach; 30 of 230 does."""
        near = latency_window(217, 13)
        stats = near.stats(240.0)
        assert stats.p95 is not None
        assert stats.p95 > 2.0
        result = latency_gate().evaluate(stats, 240.0)
        assert result.verdict is Verdict.OK
        assert "13 of 230 latencies > 2 s" in result.reason
        slow = latency_window(200, 30).stats(240.0)
        result = latency_gate().evaluate(slow, 240.0)
        assert result.verdict is Verdict.BREACHED
        assert "allowed by p95" in result.reason

    def test_judged_per_look(self) -> None:
        """A window re-tested every second needs more than a single look's bound: 25 slow of
        300 (8.3 %, Wilson lower bound 5.07 % at 99.5 %) is what a healthy tail with 3.64 %
        above 2 s reaches about 0.6 times a day, so it stays OK; latency shares are judged at
        99.99 % per look (LATENCY_LOOKS), where 30 of 300 (lower bound 5.2 %) breaches."""
        assert LATENCY_LOOKS == 50
        assert wilson_lower_bound(25, 300, 0.995) > 0.05
        chance = latency_window(275, 25, slow_every=11).stats(300.0)
        result = latency_gate().evaluate(chance, 300.0)
        assert result.verdict is Verdict.OK
        assert "25 of 300 latencies > 2 s" in result.reason
        assert wilson_lower_bound(29, 300, 0.9999) < 0.05 < wilson_lower_bound(30, 300, 0.9999)
        slow = latency_window(270, 30, slow_every=9).stats(300.0)
        result = latency_gate().evaluate(slow, 300.0)
        assert result.verdict is Verdict.BREACHED
        assert "at 99.99%" in result.reason

    def test_rates_keep_their_confidence(self) -> None:
        """Error shares are judged at the gate's confidence as written: 25 errors of 300
        against 5 % breach at 99.5 %, and the reason says so."""
        gate = error_gate(above=0.05)
        result = gate.evaluate(make_stats(300, 25), 0.0)
        assert result.verdict is Verdict.BREACHED
        assert "at 99.5%" in result.reason

    def test_min_slow(self) -> None:
        """A convincing share still needs min_slow slow latencies."""
        stats = latency_window(30, 12, slow_every=3).stats(50.0)
        assert verdict(latency_gate(min_slow=12), stats, 50.0) is Verdict.BREACHED
        assert verdict(latency_gate(), stats, 50.0) is Verdict.OK

    @pytest.mark.parametrize(
        ("metric", "slow", "breached"),
        [
            (GateMetric.LATENCY_P50, 60, False),
            (GateMetric.LATENCY_P50, 160, True),
            (GateMetric.LATENCY_P99, 2, False),
            (GateMetric.LATENCY_P99, 25, True),
        ],
    )
    def test_each_quantile_has_its_share(
        self, metric: GateMetric, slow: int, breached: bool
    ) -> None:
        """p50 allows 50 % above the threshold, p99 1 %."""
        stats = latency_window(200 - slow, slow, slow_every=2).stats(300.0)
        gate = latency_gate(metric, min_slow=2, consecutive_failures=0)
        expected = Verdict.BREACHED if breached else Verdict.OK
        assert verdict(gate, stats, 300.0) is expected

    def test_nearly_every_request_slow(self) -> None:
        """A run of slow latencies spanning 1.5 s or more breaches at once; the run needed
        against a 5 % share is 5 (the scan bound), not min_samples."""
        window = latency_window(300, 0)
        for sent in range(300, 304):  # one probe a second, each answering in 3 s
            window.add(sent + 3.0, ok=True, latency=3.0)
        assert verdict(latency_gate(), window.stats(306.5), 306.5) is Verdict.OK
        window.add(307.0, ok=True, latency=3.0)
        result = latency_gate().evaluate(window.stats(307.5), 307.5)
        assert result.verdict is Verdict.BREACHED
        assert "nearly every request is slow: 5 in a row" in result.reason

    def test_a_burst_of_slow_answers_is_not_a_run(self) -> None:
        """Ten slow answers in the same instant (a GC pause ending) span no time."""
        window = latency_window(100, 0)
        window.add(100.0, ok=True, latency=3.0, count=10)
        assert verdict(latency_gate(), window.stats(100.5), 100.5) is Verdict.OK

    def test_a_waiting_probe_is_evidence(self) -> None:
        """Probes still waiting past the threshold count as slow samples now."""
        window = latency_window(100, 0)
        waiting = [100.0, 101.0, 102.0, 103.0, 104.0]
        stats = window.stats(106.5, in_flight=waiting)
        assert stats.slow == (5,)
        assert stats.seen == (105,)
        assert verdict(latency_gate(), stats, 106.5) is Verdict.BREACHED
        assert verdict(latency_gate(), window.stats(106.5), 106.5) is Verdict.OK

    def test_histogram_lower_bounds(self) -> None:
        """A scraped observation counts as slow only when its bucket lies wholly above the
        threshold: (1, 2.5] cannot breach a 2 s gate, (2, 2.5] can."""
        window = Window(thresholds=(2.0,))
        window.add_latency(0.0, 1.0, 100, above=True)
        assert window.stats(0.5).slow == (0,)
        window.add_latency(0.0, 2.0, 100, above=True)
        stats = window.stats(0.5)
        assert stats.slow == (100,)
        assert stats.max == 2.0  # never above what is known

    def test_mean_uses_a_lower_bound(self) -> None:
        """The mean breaches when its lower confidence bound is above the threshold."""
        near = latency_window(60, 40, slow_every=2).stats(100.0)  # mean 1.26 s
        assert verdict(latency_gate(GateMetric.LATENCY_MEAN), near, 100.0) is Verdict.OK
        slow = latency_window(10, 90, slow_every=1).stats(100.0)  # mean 2.71 s
        result = latency_gate(GateMetric.LATENCY_MEAN).evaluate(slow, 100.0)
        assert result.verdict is Verdict.BREACHED
        assert "lower bound" in result.reason

    def test_max_is_any_latency_above(self) -> None:
        """latency_max breaches on one latency known to be above the threshold."""
        gate = latency_gate(GateMetric.LATENCY_MAX)
        assert verdict(gate, latency_window(30, 0).stats(30.0), 30.0) is Verdict.OK
        assert verdict(gate, latency_window(30, 1).stats(31.0), 31.0) is Verdict.BREACHED

    def test_too_few_latencies_is_unknown(self) -> None:
        """Below min_samples latencies the gate cannot judge the share."""
        stats = latency_window(10, 5, slow_every=3).stats(15.0)
        assert verdict(latency_gate(), stats, 15.0) is Verdict.UNKNOWN

    def test_window_without_the_threshold_is_unknown(self) -> None:
        """A window that does not count the gate's threshold cannot breach it."""
        window = Window()
        for t in range(50):
            window.add(float(t), ok=True, latency=9.0)
        result = latency_gate().evaluate(window.stats(50.0), 50.0)
        assert result.verdict is Verdict.UNKNOWN


class TestWarmUp:
    def test_only_hard_down_is_judged(self) -> None:
        """While warming up, 50 % errors are not judged; a hard-down run still is."""
        gate = error_gate()
        assert gate.evaluate(make_stats(100, 50), 0.0, warming_up=True).verdict is Verdict.UNKNOWN
        down = make_stats(10, 5, consecutive_failures=5)
        assert gate.evaluate(down, 0.0, warming_up=True).verdict is Verdict.BREACHED

    def test_slow_warm_up_is_not_judged(self) -> None:
        """Slow answers during warm-up, even every one of them, are not judged."""
        stats = latency_window(0, 30, slow_every=1).stats(30.0)
        result = latency_gate().evaluate(stats, 30.0, warming_up=True)
        assert result.verdict is Verdict.UNKNOWN
        assert "warming up" in result.reason


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

    def test_source_down_counts_against_for(self) -> None:
        """Time with the source down counts as not breached in the for_ share."""
        gate = error_gate(for_=10.0)
        bad = make_stats(100, 50)
        assert gate.evaluate(bad, 0.0).verdict is Verdict.UNKNOWN
        assert gate.evaluate(bad, 3.0, source_up=False).verdict is Verdict.UNKNOWN
        assert gate.evaluate(bad, 6.0).verdict is Verdict.UNKNOWN
        assert gate.evaluate(bad, 10.0).verdict is Verdict.UNKNOWN  # 7 s of 10 breached
        assert gate.evaluate(bad, 14.0).verdict is Verdict.BREACHED  # 8 s of 10

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
        assert "pending: breached 66.7% of the last 30 s over 20 s" in results[1].reason

    def test_share_of_time(self) -> None:
        """Unhealthy 9 s of every 10 s breaches for: 10s; a 4 s on, 4 s off flap never does."""
        mostly = Gate(GateSpec(name="h", metric=GateMetric.UNHEALTHY, for_=10.0))
        flap = Gate(GateSpec(name="h", metric=GateMetric.UNHEALTHY, for_=10.0))
        down, up = make_stats(1, 1, last_ok=False), make_stats(1, 0, last_ok=True)
        mostly_seen, flap_seen = set(), set()
        for t in range(120):
            mostly_seen.add(mostly.evaluate(down if t % 10 else up, float(t)).verdict)
            flap_seen.add(flap.evaluate(down if t % 8 < 4 else up, float(t)).verdict)
        assert Verdict.BREACHED in mostly_seen
        assert Verdict.BREACHED not in flap_seen

    def test_long_interruption_restarts(self) -> None:
        """A whole for_ without a breached moment ends the episode: the wait starts over."""
        gate = error_gate(for_=30.0)
        bad, good = make_stats(100, 50), make_stats(100, 0)
        gate.evaluate(bad, 0.0)
        gate.evaluate(good, 20.0)
        gate.evaluate(good, 55.0)
        assert verdict(gate, bad, 60.0) is Verdict.UNKNOWN
        assert verdict(gate, bad, 89.0) is Verdict.UNKNOWN
        assert verdict(gate, bad, 90.0) is Verdict.BREACHED

    @pytest.mark.parametrize("interruption", [make_stats(100, 0), make_stats(5, 5)])
    def test_ok_or_unknown_counts_as_not_breached(self, interruption: WindowStats) -> None:
        """OK or UNKNOWN time counts against the share: 15 s of 30 s is not enough."""
        gate = error_gate(for_=30.0)
        bad = make_stats(100, 50)
        gate.evaluate(bad, 0.0)
        gate.evaluate(interruption, 15.0)
        assert verdict(gate, bad, 30.0) is Verdict.UNKNOWN
        assert verdict(gate, bad, 53.0) is Verdict.UNKNOWN
        assert verdict(gate, bad, 54.0) is Verdict.BREACHED  # 24 s of the last 30

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
