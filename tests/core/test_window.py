"""Sliding window: counts, expiry, failure runs, latency quantiles and memory bounds."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdogd.core.window import MAX_LATENCY, MIN_LATENCY, Window, WindowStats

ACCURACY = 0.01
# Bin edges are computed with log() in floating point, so a value sitting exactly on an edge
# can land one bin over; that costs at most a few ulps beyond the 1 % bound.
TOLERANCE = ACCURACY + 1e-9


def nearest_rank(values: list[float], q: float) -> float:
    """The value of 1-based rank ceil(q * n) in ascending order."""
    ordered = sorted(values)
    rank = max(1, math.ceil(round(q * len(ordered), 9)))
    return ordered[rank - 1]


def assert_close(reported: float | None, exact: float) -> None:
    assert reported is not None
    assert abs(reported - exact) <= TOLERANCE * exact


latencies = st.floats(min_value=MIN_LATENCY * 1.001, max_value=MAX_LATENCY)


class TestCounts:
    def test_empty_window(self) -> None:
        """An empty window has no samples, no ratio and no latency."""
        stats = Window().stats(100.0)
        assert stats == WindowStats(
            count=0,
            errors=0,
            error_ratio=None,
            latency_count=0,
            p50=None,
            p95=None,
            p99=None,
            mean=None,
            max=None,
            consecutive_failures=0,
            last_ok=None,
            last_sample_at=None,
            last_value=None,
            counts_by_second=(0,) * 300,
            errors_by_second=(0,) * 300,
            latencies_by_second=(0,) * 300,
        )

    def test_failure_run_span(self) -> None:
        """The trailing failure run knows its first and newest failure; a success ends it."""
        window = Window()
        window.add(10.0, ok=False)
        window.add(10.5, ok=False)
        window.add(12.0, ok=False)
        stats = window.stats(12.5)
        assert (stats.consecutive_failures, stats.run_span) == (3, 2.0)
        window.add(13.0, ok=True)
        assert window.stats(13.5).run_span == 0.0

    def test_short_window_and_seconds(self) -> None:
        """Every second of the window is there, oldest first."""
        window = Window()
        for t in range(120):
            window.add(float(t), ok=t < 100)
        stats = window.stats(119.5)
        assert sum(stats.errors_by_second[-60:]) == 20
        assert (stats.counts_by_second[-1], stats.errors_by_second[-1]) == (1, 1)
        assert (stats.counts_by_second[-21], stats.errors_by_second[-21]) == (1, 0)

    def test_threshold_counts_are_exact(self) -> None:
        """Samples above each threshold are counted exactly, with the trailing slow run (in
        the order the samples were sent: one every 4 s here, so none overtakes another)."""
        window = Window(thresholds=(2.0, 0.5))
        for t, latency in enumerate([0.1, 2.0, 2.0001, 0.6, 3.0, 3.0]):
            window.add(4.0 * t + latency, ok=True, latency=latency)
        stats = window.stats(24.0)
        assert stats.thresholds == (0.5, 2.0)
        assert stats.slow == (5, 3)
        assert stats.slow_run == (5, 2)
        assert stats.slow_run_span == (23.0 - 6.0, 4.0)

    def test_overtaken_slow_answers_do_not_extend_a_run(self) -> None:
        """A slow answer sent before the newest fast one is counted, but not in the run."""
        window = Window(thresholds=(2.0,))
        window.add(10.0, ok=True, latency=0.1)  # sent at 9.9
        window.add(11.0, ok=True, latency=3.0)  # sent at 8.0, before it
        stats = window.stats(11.5)
        assert (stats.slow, stats.slow_run) == ((1,), (0,))
        window.add(13.0, ok=True, latency=3.0)  # sent at 10.0, after it
        assert window.stats(13.5).slow_run == (1,)

    def test_count_errors_ratio(self) -> None:
        """Successes and failures add up to count, errors and their ratio."""
        window = Window()
        for i in range(8):
            window.add(10.0 + i, ok=i % 4 != 0)
        stats = window.stats(20.0)
        assert (stats.count, stats.errors, stats.error_ratio) == (8, 2, 0.25)

    def test_add_with_count(self) -> None:
        """count= records that many identical samples at once."""
        window = Window()
        window.add(1.0, ok=True, latency=0.1, count=5)
        window.add(1.0, ok=False, latency=0.3, count=5)
        stats = window.stats(1.0)
        assert (stats.count, stats.errors, stats.latency_count) == (10, 5, 10)
        assert stats.mean == pytest.approx(0.2)

    def test_add_counts(self) -> None:
        """Scrape deltas add requests and errors but no latency."""
        window = Window()
        window.add_counts(5.0, requests=100, errors=3)
        window.add_counts(6.0, requests=50, errors=0)
        stats = window.stats(6.0)
        assert (stats.count, stats.errors, stats.latency_count) == (150, 3, 0)
        assert stats.error_ratio == pytest.approx(0.02)

    def test_add_counts_zero_delta_freshens(self) -> None:
        """An empty scrape delta adds nothing but proves the source is alive."""
        window = Window()
        window.add_counts(7.0, requests=0, errors=0)
        stats = window.stats(7.0)
        assert (stats.count, stats.last_sample_at, stats.last_ok) == (0, 7.0, None)

    def test_add_latency_counts_no_requests(self) -> None:
        """Histogram deltas feed latency statistics only."""
        window = Window()
        window.add_latency(1.0, 0.5, count=4)
        stats = window.stats(1.0)
        assert (stats.count, stats.latency_count, stats.last_ok) == (0, 4, None)
        assert stats.max == 0.5

    @pytest.mark.parametrize(("requests", "errors"), [(-1, 0), (3, 4), (3, -1)])
    def test_add_counts_rejects_impossible_deltas(self, requests: int, errors: int) -> None:
        """Negative deltas or more errors than requests are rejected."""
        with pytest.raises(ValueError, match="errors <= requests"):
            Window().add_counts(1.0, requests=requests, errors=errors)

    def test_add_rejects_zero_count(self) -> None:
        """A sample must stand for at least one request."""
        with pytest.raises(ValueError, match="count"):
            Window().add(1.0, ok=True, count=0)


class TestExpiry:
    def test_sample_leaves_after_span(self) -> None:
        """A sample counts until its bucket is a full span old, then disappears."""
        window = Window(span=300.0, bucket=1.0)
        window.add(10.5, ok=False)
        assert window.stats(309.99).count == 1
        assert window.stats(310.0).count == 0

    def test_only_old_buckets_expire(self) -> None:
        """Moving on expires old buckets and keeps the recent ones."""
        window = Window(span=10.0, bucket=1.0)
        for t in range(20):
            window.add(float(t), ok=t < 15)
        stats = window.stats(19.5)
        assert (stats.count, stats.errors) == (10, 5)

    def test_jump_far_ahead_clears_everything(self) -> None:
        """A jump longer than the span empties the window, latencies included."""
        window = Window(span=60.0, bucket=1.0)
        for t in range(60):
            window.add(float(t), ok=False, latency=0.2)
        window.add(10_000.0, ok=True, latency=1.0)
        stats = window.stats(10_000.0)
        assert (stats.count, stats.errors, stats.latency_count) == (1, 0, 1)
        assert stats.max == 1.0
        assert_close(stats.p50, 1.0)

    def test_gap_shorter_than_span_keeps_old_samples(self) -> None:
        """After a quiet gap the samples still inside the span remain."""
        window = Window(span=300.0, bucket=1.0)
        for t in range(10):
            window.add(float(t), ok=False)
        window.add(200.0, ok=True)
        assert (window.stats(200.0).count, window.stats(200.0).errors) == (11, 10)
        assert (window.stats(305.0).count, window.stats(305.0).errors) == (5, 4)
        assert (window.stats(310.0).count, window.stats(310.0).errors) == (1, 0)

    def test_late_sample_lands_in_its_own_bucket(self) -> None:
        """A sample from slightly in the past counts and expires with its own bucket."""
        window = Window(span=300.0, bucket=1.0)
        window.add(100.2, ok=True)
        window.add(98.7, ok=False)
        assert (window.stats(100.5).count, window.stats(100.5).errors) == (2, 1)
        assert (window.stats(398.5).count, window.stats(398.5).errors) == (1, 0)

    def test_backwards_within_a_bucket(self) -> None:
        """Time going back by less than a bucket still counts the sample."""
        window = Window()
        window.add(10.9, ok=True, latency=0.1)
        window.add(10.2, ok=True, latency=0.3)
        stats = window.stats(10.95)
        assert (stats.count, stats.latency_count, stats.max) == (2, 2, 0.3)

    def test_sample_older_than_span_is_dropped(self) -> None:
        """A sample from before the window is ignored."""
        window = Window(span=300.0, bucket=1.0)
        window.add(1000.0, ok=True)
        window.add(600.0, ok=False, latency=5.0)
        stats = window.stats(1000.0)
        assert (stats.count, stats.errors, stats.latency_count) == (1, 0, 0)

    def test_stats_in_the_past_does_not_resurrect(self) -> None:
        """Asking about an earlier time never brings expired samples back."""
        window = Window(span=10.0, bucket=1.0)
        window.add(0.0, ok=False)
        assert window.stats(50.0).count == 0
        assert window.stats(5.0).count == 0

    def test_span_must_be_whole_buckets(self) -> None:
        """A span that is not a whole number of buckets is a configuration error."""
        with pytest.raises(ValueError, match="whole number"):
            Window(span=10.0, bucket=3.0)


class TestConsecutiveFailures:
    def test_trailing_run(self) -> None:
        """The run counts failures since the last success."""
        window = Window()
        for t, ok in enumerate([False, True, False, False, False]):
            window.add(float(t), ok=ok)
        stats = window.stats(5.0)
        assert (stats.consecutive_failures, stats.last_ok) == (3, False)

    def test_success_resets_run(self) -> None:
        """One success ends the run."""
        window = Window()
        window.add(1.0, ok=False, count=5)
        window.add(2.0, ok=True)
        stats = window.stats(2.0)
        assert (stats.consecutive_failures, stats.last_ok) == (0, True)

    def test_late_sample_does_not_change_latest(self) -> None:
        """A late success does not end a run that is newer than it."""
        window = Window()
        window.add(10.0, ok=False)
        window.add(11.0, ok=False)
        window.add(10.5, ok=True)
        stats = window.stats(11.0)
        assert (stats.consecutive_failures, stats.last_ok, stats.last_sample_at) == (2, False, 11.0)

    def test_scrape_delta_all_failed_extends_run(self) -> None:
        """A scrape delta in which every request failed extends the run by all of them."""
        window = Window()
        window.add_counts(1.0, requests=4, errors=4)
        window.add_counts(2.0, requests=6, errors=6)
        assert window.stats(2.0).consecutive_failures == 10

    def test_scrape_delta_with_a_success_ends_run(self) -> None:
        """A mixed delta has unknown order, so it ends the run."""
        window = Window()
        window.add_counts(1.0, requests=4, errors=4)
        window.add_counts(2.0, requests=6, errors=5)
        stats = window.stats(2.0)
        assert (stats.consecutive_failures, stats.last_ok) == (0, True)

    def test_run_expires_with_window(self) -> None:
        """Once the last sample leaves the window there is no latest outcome."""
        window = Window(span=10.0, bucket=1.0)
        window.add(0.0, ok=False, count=3)
        stats = window.stats(10.0)
        assert (stats.consecutive_failures, stats.last_ok, stats.last_sample_at) == (0, None, 0.0)


class TestLatency:
    def test_mean_and_max_are_exact(self) -> None:
        """Mean and max are computed from sums, not from bins."""
        window = Window()
        for t, latency in enumerate([0.1, 0.2, 0.6]):
            window.add(float(t), ok=True, latency=latency)
        stats = window.stats(3.0)
        assert stats.mean == pytest.approx(0.3)
        assert stats.max == 0.6

    def test_nearest_rank(self) -> None:
        """Quantiles are nearest-rank: p50 of 1..100 is 50, not 50.5."""
        window = Window()
        for value in range(1, 101):
            window.add(0.0, ok=True, latency=float(value))
        stats = window.stats(0.0)
        assert_close(stats.p50, 50.0)
        assert_close(stats.p95, 95.0)
        assert_close(stats.p99, 99.0)

    def test_quantile_never_exceeds_max(self) -> None:
        """A bin's midpoint is capped at the observed maximum."""
        window = Window()
        window.add(0.0, ok=True, latency=0.123)
        stats = window.stats(0.0)
        assert stats.p99 is not None
        assert stats.p99 <= 0.123

    def test_zero_latency(self) -> None:
        """Latencies at or below MIN_LATENCY report as zero."""
        window = Window()
        window.add(0.0, ok=True, latency=0.0, count=3)
        window.add(0.0, ok=True, latency=MIN_LATENCY / 2)
        stats = window.stats(0.0)
        assert (stats.p50, stats.p99, stats.latency_count) == (0.0, 0.0, 4)

    def test_huge_latency_is_clamped(self) -> None:
        """Latencies beyond MAX_LATENCY are clamped, infinity included."""
        window = Window()
        window.add(0.0, ok=True, latency=math.inf)
        stats = window.stats(0.0)
        assert stats.max == MAX_LATENCY
        assert_close(stats.p50, MAX_LATENCY)

    @pytest.mark.parametrize("latency", [-0.1, math.nan])
    def test_invalid_latency_rejected(self, latency: float) -> None:
        """Negative or NaN latencies are rejected and leave the window untouched."""
        window = Window()
        window.add(0.0, ok=True, latency=0.2)
        with pytest.raises(ValueError, match="latency"):
            window.add(1.0, ok=False, latency=latency)
        stats = window.stats(1.0)
        assert (stats.count, stats.errors, stats.latency_count, stats.last_ok) == (1, 0, 1, True)

    def test_latency_accessor(self) -> None:
        """WindowStats.latency() reads the statistic by name and rejects unknown names."""
        window = Window()
        for value in (0.1, 0.2, 0.3, 0.4):
            window.add(0.0, ok=True, latency=value)
        stats = window.stats(0.0)
        assert [stats.latency(w) for w in ("p50", "p95", "p99", "mean", "max")] == [
            stats.p50,
            stats.p95,
            stats.p99,
            stats.mean,
            stats.max,
        ]
        with pytest.raises(ValueError, match="p90"):
            stats.latency("p90")

    @given(st.lists(latencies, min_size=1, max_size=400))
    def test_quantiles_within_one_percent(self, values: list[float]) -> None:
        """p50, p95 and p99 are within 1 % of the exact nearest-rank quantiles."""
        window = Window()
        for value in values:
            window.add(0.0, ok=True, latency=value)
        stats = window.stats(0.0)
        assert_close(stats.p50, nearest_rank(values, 0.50))
        assert_close(stats.p95, nearest_rank(values, 0.95))
        assert_close(stats.p99, nearest_rank(values, 0.99))
        assert stats.max == max(values)

    @settings(max_examples=50)
    @given(
        st.lists(
            st.tuples(st.floats(min_value=0.0, max_value=5.0), latencies),
            min_size=1,
            max_size=200,
        )
    )
    def test_quantiles_over_expiring_buckets(self, steps: list[tuple[float, float]]) -> None:
        """Quantiles cover exactly the samples in live buckets as the window slides."""
        window = Window(span=20.0, bucket=1.0)
        now = 0.0
        seen: list[tuple[float, float]] = []
        for gap, value in steps:
            now += gap
            window.add(now, ok=True, latency=value)
            seen.append((now, value))
        live = [v for t, v in seen if math.floor(t) > math.floor(now) - 20]
        stats = window.stats(now)
        assert stats.latency_count == len(live)
        assert_close(stats.p50, nearest_rank(live, 0.50))
        assert_close(stats.p99, nearest_rank(live, 0.99))


class TestMemory:
    def test_bins_bounded_by_latency_range(self) -> None:
        """1e5 latencies spread over 18 decades fill no more bins than the clamped range."""
        rng = random.Random(7)
        window = Window(span=1.0, bucket=1.0)
        for _ in range(100_000):
            window.add(0.0, ok=True, latency=10.0 ** rng.uniform(-9.0, 9.0))
        # One bucket plus the merged histogram.
        assert window.bin_count <= 2 * window.max_bins_per_histogram
        assert window.max_bins_per_histogram < 1300  # log(1e11) / log(1.0202) + zero bin

    def test_bins_freed_on_expiry(self) -> None:
        """Expired buckets give their bins back."""
        rng = random.Random(8)
        window = Window(span=60.0, bucket=1.0)
        for i in range(100_000):
            window.add(i / 1000, ok=True, latency=rng.lognormvariate(-3.0, 1.0))
        assert window.bin_count > 0
        window.stats(1000.0)
        assert window.bin_count == 0


class TestValue:
    def test_newest_value_wins(self) -> None:
        """The latest gauge reading is reported, a late one does not replace it."""
        window = Window()
        window.add_value(10.0, 1.5)
        window.add_value(12.0, 2.5)
        window.add_value(11.0, 9.9)
        stats = window.stats(12.0)
        assert (stats.last_value, stats.count, stats.last_sample_at) == (2.5, 0, 12.0)

    def test_value_expires(self) -> None:
        """A reading older than the span is no longer reported."""
        window = Window(span=30.0, bucket=1.0)
        window.add_value(0.0, 4.0)
        assert window.stats(29.0).last_value == 4.0
        assert window.stats(30.0).last_value is None
