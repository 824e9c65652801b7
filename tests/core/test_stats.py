"""Confidence bounds and two-proportion tests, checked against values computed by hand."""

from __future__ import annotations

import math

import pytest

from watchdogd.core.gates import wilson_lower_bound
from watchdogd.core.stats import ratio_margin_z, restricted_rates, wilson_bounds, z_for


def test_z_for_is_the_one_sided_normal_quantile() -> None:
    assert z_for(0.975) == pytest.approx(1.95996, abs=1e-5)
    assert z_for(0.995) == pytest.approx(2.57583, abs=1e-5)
    with pytest.raises(ValueError, match="confidence"):
        z_for(1.0)


def test_wilson_bounds_match_the_textbook_interval() -> None:
    """5 of 100 at 95 % two-sided (z 1.96): [2.15 %, 11.18 %] (Newcombe 1998, method 3)."""
    lower, upper = wilson_bounds(5, 100, 1.959964)
    assert lower == pytest.approx(0.0215, abs=1e-4)
    assert upper == pytest.approx(0.1118, abs=1e-4)


def test_wilson_bounds_at_the_edges() -> None:
    assert wilson_bounds(0, 50, 2.0)[0] == 0.0
    assert wilson_bounds(50, 50, 2.0)[1] == 1.0
    assert wilson_bounds(0, 0, 2.0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="events"):
        wilson_bounds(3, 2, 2.0)


def test_wilson_lower_bound_agrees_with_the_gates() -> None:
    for errors, n in ((1, 60), (20, 1000), (300, 6000)):
        expected = wilson_lower_bound(errors, n, 0.995)
        assert wilson_bounds(errors, n, z_for(0.995))[0] == pytest.approx(expected)


def test_restricted_rates_are_pooled_without_a_margin() -> None:
    assert restricted_rates(30, 100, 15, 100, 1.0) == pytest.approx((0.225, 0.225))


def test_restricted_rates_keep_counts_that_already_meet_the_margin() -> None:
    """20 % against 10 % already satisfies p1 = 2 * p0: the constrained estimate is the data."""
    assert restricted_rates(20, 100, 10, 100, 2.0) == pytest.approx((0.2, 0.1))


def test_restricted_rates_without_events() -> None:
    assert restricted_rates(0, 100, 0, 100, 1.5) == (0.0, 0.0)


def test_ratio_margin_z_without_a_margin_is_the_pooled_z() -> None:
    """30 of 100 against 15 of 100: pooled 22.5 %, z = 0.15 / sqrt(.225 * .775 * 2 / 100)."""
    expected = 0.15 / math.sqrt(0.225 * 0.775 * 2 / 100)
    assert ratio_margin_z(30, 100, 15, 100, 1.0) == pytest.approx(expected)
    assert expected == pytest.approx(2.54, abs=0.01)


def test_ratio_margin_z_is_zero_at_the_margin_and_negative_below() -> None:
    assert ratio_margin_z(20, 100, 10, 100, 2.0) == pytest.approx(0.0)
    assert ratio_margin_z(10, 100, 10, 100, 2.0) < 0.0


def test_ratio_margin_z_with_no_reference_errors_is_finite() -> None:
    """Zero errors on blue must not make every green error infinitely significant."""
    z = ratio_margin_z(3, 1000, 0, 1000, 1.5)
    assert 0.0 < z < 2.0
    assert ratio_margin_z(0, 1000, 0, 1000, 1.5) == 0.0


def test_ratio_margin_z_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="both sides"):
        ratio_margin_z(0, 0, 1, 10, 1.0)
    with pytest.raises(ValueError, match="events"):
        ratio_margin_z(11, 10, 1, 10, 1.0)
    with pytest.raises(ValueError, match="margin"):
        ratio_margin_z(1, 10, 1, 10, 0.0)
