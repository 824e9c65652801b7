"""Baseline gates: green judged against blue over the same window, with plain numbers."""

from __future__ import annotations

import math

import pytest

from watchdogd.core.baseline import (
    DEFAULT_CONFIDENCE,
    BaselineSpec,
    Counts,
    compare_error_rates,
    compare_latency,
    evidence_needed,
    latency_evidence,
    latency_threshold,
    lognormal_exceedance,
)
from watchdogd.core.gates import GateMetric, Verdict

ERRORS = BaselineSpec(name="web:error_rate", metric=GateMetric.ERROR_RATE)
P95 = BaselineSpec(name="web:latency_p95", metric=GateMetric.LATENCY_P95)


class TestErrorRates:
    def test_tripled_errors_under_the_absolute_threshold_breach(self) -> None:
        """Issue #15's case: 0.3 % -> 0.9 % never crosses 1 % but is clearly worse."""
        result = compare_error_rates(ERRORS, Counts(15000, 135), Counts(15000, 45))
        assert result.verdict is Verdict.BREACHED
        assert result.z is not None
        assert result.z > 3.72
        assert "0.9% (135 of 15000)" in result.reason
        assert "significant at 99.99%" in result.reason
        assert "0.3% (45 of 15000)" in result.reason
        assert "1.5x" in result.reason

    def test_a_noisy_but_healthy_baseline_is_not_blamed_on_green(self) -> None:
        """Blue at 0.8 % and green the same: near a 1 % absolute gate, fine against blue."""
        result = compare_error_rates(ERRORS, Counts(15000, 122), Counts(15000, 118))
        assert result.verdict is Verdict.OK

    def test_the_default_confidence_allows_for_repeated_looks(self) -> None:
        """A baseline gate is tested after every error on a sliding window: 99.99 %, z 3.72."""
        assert ERRORS.confidence == DEFAULT_CONFIDENCE == 0.9999
        assert P95.confidence == DEFAULT_CONFIDENCE

    def test_a_chance_excursion_of_identical_releases_stays_ok(self) -> None:
        """80 against 30 of 15000 (the truth is 45 each): z 2.73, which a single test at
        99.5 % would call a breach and which a day of looks at 100 requests/s does reach."""
        result = compare_error_rates(ERRORS, Counts(15000, 80), Counts(15000, 30))
        assert result.verdict is Verdict.OK
        assert result.z == pytest.approx(2.73, abs=0.01)
        assert "<= 3.72" in result.reason
        once = BaselineSpec(name="once", metric=GateMetric.ERROR_RATE, confidence=0.995)
        assert compare_error_rates(once, Counts(15000, 80), Counts(15000, 30)).verdict is (
            Verdict.BREACHED
        )

    def test_a_difference_within_the_tolerance_never_breaches(self) -> None:
        """1.33x blue's ratio with a million samples each: significant, but within 50 %."""
        result = compare_error_rates(ERRORS, Counts(10**6, 4000), Counts(10**6, 3000))
        assert result.verdict is Verdict.OK

    def test_a_tighter_tolerance_catches_it(self) -> None:
        tight = BaselineSpec(name="tight", metric=GateMetric.ERROR_RATE, tolerance=0.1)
        result = compare_error_rates(tight, Counts(10**6, 4000), Counts(10**6, 3000))
        assert result.verdict is Verdict.BREACHED

    def test_too_few_green_errors_stay_ok(self) -> None:
        """10 % against 0 % is striking, but 10 errors are fewer than min_errors (20)."""
        result = compare_error_rates(ERRORS, Counts(100, 10), Counts(1000, 0))
        assert result.verdict is Verdict.OK
        assert "only 10 of the 20 green errors" in result.reason

    def test_too_few_samples_on_either_side_are_unknown(self) -> None:
        assert compare_error_rates(ERRORS, Counts(19, 19), Counts(1000, 0)).verdict is (
            Verdict.UNKNOWN
        )
        result = compare_error_rates(ERRORS, Counts(1000, 50), Counts(5, 0))
        assert result.verdict is Verdict.UNKNOWN
        assert "1000 green and 5 blue samples, 20 needed" in result.reason

    def test_failure_rates_compare_the_same_way(self) -> None:
        spec = BaselineSpec(name="login:failure_rate", metric=GateMetric.FAILURE_RATE)
        result = compare_error_rates(spec, Counts(2000, 60), Counts(2000, 10))
        assert result.verdict is Verdict.BREACHED
        assert "failure ratio" in result.reason

    def test_a_latency_spec_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not a rate"):
            compare_error_rates(P95, Counts(100, 1), Counts(100, 1))


class TestLatency:
    BLUE = [0.1] * 950 + [0.5] * 50  # p95 (nearest rank 950) is 0.1 s; 50 samples above it

    def test_evidence_from_plain_samples(self) -> None:
        green = [0.1] * 900 + [0.2] * 100
        evidence = latency_evidence(P95, green, self.BLUE)
        assert evidence.blue_quantile == 0.1
        assert evidence.threshold == pytest.approx(0.12)
        assert evidence.green == Counts(1000, 100)
        assert evidence.blue_total == 1000

    def test_slower_green_breaches(self) -> None:
        """10 % of green above 1.2x blue's p95 against blue's 5 %: z about 4.2."""
        green = [0.1] * 900 + [0.2] * 100
        result = compare_latency(P95, latency_evidence(P95, green, self.BLUE))
        assert result.verdict is Verdict.BREACHED
        assert result.z == pytest.approx(0.05 / math.sqrt(0.075 * 0.925 * 2 / 1000))
        assert "10% (100 of 1000) of green above 120 ms" in result.reason
        assert "blue's p95 100 ms" in result.reason

    def test_green_like_blue_is_ok(self) -> None:
        result = compare_latency(P95, latency_evidence(P95, list(self.BLUE), self.BLUE))
        assert result.verdict is Verdict.OK

    def test_green_within_the_tolerance_is_ok(self) -> None:
        """Every green request 15 % slower than blue's: under the 20 % tolerance."""
        green = [latency * 1.15 for latency in self.BLUE]
        result = compare_latency(P95, latency_evidence(P95, green, self.BLUE))
        assert result.verdict is Verdict.OK

    def test_few_slow_samples_stay_ok(self) -> None:
        green = [0.1] * 40 + [0.2] * 10  # 20 % slow, but 10 < min_errors
        result = compare_latency(P95, latency_evidence(P95, green, self.BLUE))
        assert result.verdict is Verdict.OK
        assert "only 10 of the 20 slow samples" in result.reason

    def test_a_blue_quantile_without_a_tail_is_no_reference(self) -> None:
        """100 blue samples leave 5 above their p95: the p95 is little more than the max."""
        blue = [0.1] * 95 + [0.5] * 5
        result = compare_latency(P95, latency_evidence(P95, [1.0] * 100, blue))
        assert result.verdict is Verdict.UNKNOWN
        assert "5 above blue's p95, 10 needed" in result.reason

    def test_no_blue_latency_is_unknown(self) -> None:
        result = compare_latency(P95, latency_evidence(P95, [1.0] * 100, []))
        assert result.verdict is Verdict.UNKNOWN

    def test_threshold_uses_the_tolerance(self) -> None:
        spec = BaselineSpec(name="p99", metric=GateMetric.LATENCY_P99, tolerance=0.5)
        assert latency_threshold(spec, 0.4) == pytest.approx(0.6)


class TestSpec:
    def test_mean_and_max_have_no_baseline_test(self) -> None:
        for metric in (GateMetric.LATENCY_MEAN, GateMetric.LATENCY_MAX, GateMetric.UNHEALTHY):
            with pytest.raises(ValueError, match="compare baseline takes"):
                BaselineSpec(name="x", metric=metric)

    def test_defaults_per_metric(self) -> None:
        assert ERRORS.margin == pytest.approx(1.5)
        assert P95.margin == pytest.approx(1.2)
        assert BaselineSpec(name="x", metric=GateMetric.LATENCY_P95, tolerance=0.0).margin == 1.0

    def test_bad_settings_are_refused(self) -> None:
        with pytest.raises(ValueError, match="tolerance"):
            BaselineSpec(name="x", metric=GateMetric.ERROR_RATE, tolerance=-0.1)
        with pytest.raises(ValueError, match="confidence"):
            BaselineSpec(name="x", metric=GateMetric.ERROR_RATE, confidence=1.0)
        with pytest.raises(ValueError, match="min_samples"):
            BaselineSpec(name="x", metric=GateMetric.ERROR_RATE, min_errors=0)


class TestEvidenceNeeded:
    def test_errors_tripled_at_100_per_second(self) -> None:
        """The median time to catch 0.3 % -> 0.9 % at half the traffic: about four minutes
        for one test at 99.99 % (the gate, testing every second, takes about three)."""
        median = evidence_needed(100, 0.5, 0.003, 0.009, margin=1.5, power=0.5)
        assert 230 < median < 260
        assert evidence_needed(100, 0.5, 0.003, 0.009, margin=1.5) > median
        once = evidence_needed(100, 0.5, 0.003, 0.009, margin=1.5, power=0.5, confidence=0.995)
        assert 100 < once < 130

    def test_a_small_share_needs_longer(self) -> None:
        times = [evidence_needed(100, s, 0.003, 0.009, margin=1.5) for s in (0.5, 0.25, 0.05)]
        assert times == sorted(times)

    def test_low_traffic_is_bound_by_the_minimum_errors(self) -> None:
        """At 1 request/s with 5 % to green, 20 errors at 0.9 % take 20 / 0.00045 s."""
        needed = evidence_needed(1, 0.05, 0.003, 0.009, margin=1.5, power=0.5, confidence=0.995)
        assert needed == pytest.approx(20 / (0.05 * 0.009))

    def test_a_regression_within_the_tolerance_is_never_caught(self) -> None:
        assert evidence_needed(100, 0.5, 0.003, 0.004, margin=1.5) == math.inf

    def test_latency_planning_with_lognormal_shares(self) -> None:
        same = lognormal_exceedance(0.95, 1.0, 1.0, 0.6)
        assert same == pytest.approx(0.05)
        slow = lognormal_exceedance(0.95, 1.5, 1.2, 0.6)
        assert slow == pytest.approx(0.1015, abs=1e-4)
        assert evidence_needed(100, 0.5, 0.05, slow, margin=1.0, power=0.5) < 30

    def test_refuses_a_share_outside_zero_and_one(self) -> None:
        with pytest.raises(ValueError, match="share"):
            evidence_needed(100, 1.0, 0.003, 0.009, margin=1.5)
