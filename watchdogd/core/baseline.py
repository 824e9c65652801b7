"""Baseline gates: is green (the new release) worse than blue (the running one)?

An absolute gate asks "are errors above 1 %?". A baseline gate asks "over the same window,
does green fail significantly more often than blue, by more than a tolerance?". It catches a
release that triples errors from 0.3 % to 0.9 % (never near 1 %), and it does not blame a new
release for a bad hour that blue is having too. Both kinds are meant to run side by side.

Rules this module keeps (the same as ``core.gates``):

1. Missing data is never bad data: too few samples on either side, or too few errors (slow
   requests) on green, give ``UNKNOWN`` or ``OK``, never ``BREACHED``.
2. A breach is a one-sided test at the gate's confidence, with a documented margin.

Error and failure rates
-----------------------
``H0: p_green <= (1 + tolerance) * p_blue``, tested with the Farrington-Manning score
statistic (:func:`watchdogd.core.stats.ratio_margin_z`); breached when ``z > z(confidence)``
and green has at least ``min_errors`` errors. The tolerance is *relative* (a ratio of ratios):
error rates vary by orders of magnitude between services, and "50 % more errors than blue"
means the same at 0.01 % and at 2 %, where an absolute margin of, say, 0.5 points would be
meaningless for one and too tight for the other. Default ``tolerance`` 50 %: with identical
releases the truth (ratio 1) then sits well inside H0. That alone does not keep a test
repeated every second over 24 hours from crying wolf: every error entering or leaving the
sliding window is a fresh look, so the default confidence of a baseline gate is
``DEFAULT_CONFIDENCE`` (99.99 %), not an absolute gate's 99.5 % (``benchmarks/baseline_sim.py``).

Latency quantiles (p50, p95, p99)
---------------------------------
"Green's p95 is more than ``1 + tolerance`` times blue's" is decided as a proportion, like the
absolute latency gates: take blue's q-quantile ``Q`` over the window, count green's samples
above ``(1 + tolerance) * Q``, and compare that share with the share of blue's samples above
``Q`` (``n - ceil(q * n)`` by the nearest-rank definition) in the same score test with margin 1.
If green's latency were blue's times ``1 + tolerance``, both shares would be equal; the
sampling error of blue's quantile is the binomial error of that share, so the test accounts
for both sides' sample sizes. Why not a rank test (Mann-Whitney): it needs every sample, tests
the whole distribution rather than the quantile the operator chose, and has no natural
tolerance. This one works from counts a histogram gives. Default ``tolerance`` 20 %.

Minimum evidence: ``min_samples`` on each side, ``min_errors`` errors (or slow samples) on
green, and for latency at least ``MIN_REFERENCE_TAIL`` blue samples above blue's quantile, so
that ``Q`` is not just blue's maximum.

Planning a canary step
----------------------
:func:`evidence_needed` says how long a step must last, at a given request rate and green
share, to catch a given regression with a given power; docs/canary.md has the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from watchdogd.core.gates import GateMetric, Verdict
from watchdogd.core.stats import ratio_margin_z, restricted_rates, z_for

__all__ = [
    "BASELINE_METRICS",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_TOLERANCE",
    "MIN_REFERENCE_TAIL",
    "BaselineResult",
    "BaselineSpec",
    "Counts",
    "LatencyEvidence",
    "compare_error_rates",
    "compare_latency",
    "evidence_needed",
    "latency_evidence",
    "latency_threshold",
    "lognormal_exceedance",
]

QUANTILES = {
    GateMetric.LATENCY_P50: 0.50,
    GateMetric.LATENCY_P95: 0.95,
    GateMetric.LATENCY_P99: 0.99,
}
_RATES = {GateMetric.ERROR_RATE: "error ratio", GateMetric.FAILURE_RATE: "failure ratio"}
BASELINE_METRICS = frozenset(_RATES) | frozenset(QUANTILES)
"""Metrics a baseline gate can compare. A mean has no proportion behind it and a maximum is a
single sample, so neither has a test with the care above."""

DEFAULT_TOLERANCE = {
    GateMetric.ERROR_RATE: 0.5,
    GateMetric.FAILURE_RATE: 0.5,
    GateMetric.LATENCY_P50: 0.2,
    GateMetric.LATENCY_P95: 0.2,
    GateMetric.LATENCY_P99: 0.2,
}

DEFAULT_CONFIDENCE = 0.9999
"""Per-evaluation confidence of a baseline gate (z = 3.72), stricter than an absolute gate's
0.995 because the test is repeated every second on a sliding window: a new error on green or
an old one leaving blue's window makes each of them a fresh look, some 30 000 a day at
100 requests/s, not the 288 windows of five minutes a day suggests. 0.995 gave 15 false
triggers in 100 simulated days of identical releases; 0.9999 gave none and still catches
0.3 % -> 0.9 % at 100 requests/s in a median of about 3 minutes (docs/canary.md)."""

_NORMAL = NormalDist()

MIN_REFERENCE_TAIL = 10
"""Blue samples needed above blue's quantile before it counts as a reference (200 for p95)."""


@dataclass(frozen=True)
class BaselineSpec:
    """What one baseline gate compares. ``tolerance`` None takes the metric's default."""

    name: str
    metric: GateMetric
    tolerance: float | None = None
    confidence: float = DEFAULT_CONFIDENCE
    min_samples: int = 20
    min_errors: int = 20

    def __post_init__(self) -> None:
        if self.metric not in BASELINE_METRICS:
            names = ", ".join(sorted(m.value for m in BASELINE_METRICS))
            raise ValueError(f"gate {self.name}: compare baseline takes {names}")
        if self.tolerance is not None and self.tolerance < 0.0:
            raise ValueError(f"gate {self.name}: tolerance must be >= 0")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"gate {self.name}: confidence must be in (0, 1)")
        if self.min_samples < 1 or self.min_errors < 1:
            raise ValueError(f"gate {self.name}: min_samples and min_errors must be >= 1")

    @property
    def margin(self) -> float:
        """``1 + tolerance``: how many times blue's value green may reach."""
        tolerance = DEFAULT_TOLERANCE[self.metric] if self.tolerance is None else self.tolerance
        return 1.0 + tolerance


@dataclass(frozen=True)
class Counts:
    """``events`` (errors, or slow samples) out of ``total`` samples of one colour."""

    total: int
    events: int

    def __post_init__(self) -> None:
        if not 0 <= self.events <= self.total:
            raise ValueError(f"need 0 <= events <= total, got {self.events} of {self.total}")

    @property
    def ratio(self) -> float | None:
        return self.events / self.total if self.total else None


@dataclass(frozen=True)
class LatencyEvidence:
    """Blue's quantile over the window and green's samples above the tolerated threshold."""

    green: Counts  # events: green samples above ``threshold``
    blue_total: int
    blue_quantile: float | None  # seconds; None when blue has no latency in the window
    threshold: float | None  # (1 + tolerance) * blue_quantile


@dataclass(frozen=True)
class BaselineResult:
    """One comparison: the verdict, the score statistic and a reason that carries the numbers."""

    gate: str
    verdict: Verdict
    z: float | None
    reason: str


def compare_error_rates(spec: BaselineSpec, green: Counts, blue: Counts) -> BaselineResult:
    """Judge green's error (or failure) ratio against blue's over the same window."""
    if spec.metric not in _RATES:
        raise ValueError(f"gate {spec.name}: {spec.metric} is not a rate")
    what = _RATES[spec.metric]
    margin = spec.margin
    short = _too_few(spec, green.total, blue.total)
    if short:
        return BaselineResult(spec.name, Verdict.UNKNOWN, None, short)
    z = ratio_margin_z(green.events, green.total, blue.events, blue.total, margin)
    limit = z_for(spec.confidence)
    numbers = (
        f"green {what} {_percent(green.events, green.total)} vs blue "
        f"{_percent(blue.events, blue.total)}; z {z:.2f} against {margin:g}x blue's"
    )
    if green.events < spec.min_errors:
        reason = f"{numbers}; only {green.events} of the {spec.min_errors} green errors needed"
        return BaselineResult(spec.name, Verdict.OK, z, reason)
    if z > limit:
        reason = f"{numbers} > {limit:.2f} (significant at {_confidence(spec)})"
        return BaselineResult(spec.name, Verdict.BREACHED, z, reason)
    return BaselineResult(spec.name, Verdict.OK, z, f"{numbers} <= {limit:.2f}")


def latency_threshold(spec: BaselineSpec, blue_quantile: float) -> float:
    """The latency above which a green sample counts as slow: ``(1 + tolerance) * Q_blue``."""
    return spec.margin * blue_quantile


def latency_evidence(
    spec: BaselineSpec, green: Sequence[float], blue: Sequence[float]
) -> LatencyEvidence:
    """Evidence from plain latency samples (seconds): blue's nearest-rank quantile, green's
    count above the threshold. A histogram can give the same counts without the samples."""
    quantile = _quantile(spec)
    if not blue:
        return LatencyEvidence(Counts(len(green), 0), 0, None, None)
    ordered = sorted(blue)
    blue_q = ordered[math.ceil(quantile * len(ordered)) - 1]
    threshold = latency_threshold(spec, blue_q)
    slow = sum(1 for latency in green if latency > threshold)
    return LatencyEvidence(Counts(len(green), slow), len(ordered), blue_q, threshold)


def compare_latency(spec: BaselineSpec, evidence: LatencyEvidence) -> BaselineResult:
    """Judge green's latency quantile against blue's, as a share of samples above a threshold."""
    quantile = _quantile(spec)
    green, n_blue = evidence.green, evidence.blue_total
    short = _too_few(spec, green.total, n_blue)
    if short or evidence.blue_quantile is None or evidence.threshold is None:
        return BaselineResult(spec.name, Verdict.UNKNOWN, None, short or "no blue latency")
    blue_tail = n_blue - math.ceil(quantile * n_blue)
    which = spec.metric.value.removeprefix("latency_")
    if blue_tail < MIN_REFERENCE_TAIL:
        reason = (
            f"{n_blue} blue latencies give {blue_tail} above blue's {which}, "
            f"{MIN_REFERENCE_TAIL} needed for a reference"
        )
        return BaselineResult(spec.name, Verdict.UNKNOWN, None, reason)
    z = ratio_margin_z(green.events, green.total, blue_tail, n_blue, 1.0)
    limit = z_for(spec.confidence)
    numbers = (
        f"{_percent(green.events, green.total)} of green above {_ms(evidence.threshold)} "
        f"({spec.margin:g}x blue's {which} {_ms(evidence.blue_quantile)}) vs "
        f"{_percent(blue_tail, n_blue)} of blue above its {which}; z {z:.2f}"
    )
    if green.events < spec.min_errors:
        reason = f"{numbers}; only {green.events} of the {spec.min_errors} slow samples needed"
        return BaselineResult(spec.name, Verdict.OK, z, reason)
    if z > limit:
        reason = f"{numbers} > {limit:.2f} (significant at {_confidence(spec)})"
        return BaselineResult(spec.name, Verdict.BREACHED, z, reason)
    return BaselineResult(spec.name, Verdict.OK, z, f"{numbers} <= {limit:.2f}")


def evidence_needed(
    rate_per_s: float,
    green_share: float,
    blue_ratio: float,
    green_ratio: float,
    *,
    margin: float,
    confidence: float = DEFAULT_CONFIDENCE,
    power: float = 0.9,
    min_events: int = 20,
    min_samples: int = 20,
) -> float:
    """Seconds of traffic a canary step needs to catch ``green_ratio`` against ``blue_ratio``.

    ``rate_per_s`` is the total request rate, ``green_share`` green's part of it; the ratios
    are the true error ratios (or, for latency, the shares above the thresholds, see
    :func:`lognormal_exceedance` with ``margin`` 1). ``power`` is the chance of a breach at the
    end of the step: 0.5 gives the median time to detect. ``math.inf`` when the regression is
    within the tolerance and so never counts as one.
    """
    if not 0.0 < green_share < 1.0 or rate_per_s <= 0.0:
        raise ValueError("need a rate > 0 and a green share strictly between 0 and 1")
    green_rate, blue_rate = rate_per_s * green_share, rate_per_s * (1.0 - green_share)
    difference = green_ratio - margin * blue_ratio
    if difference <= 0.0:
        return math.inf
    # Variances per second of traffic: at t seconds each is divided by t. Under H0 the score
    # test uses the restricted estimate; under the alternative, the true ratios.
    r1, r0 = restricted_rates(
        green_rate * green_ratio, green_rate, blue_rate * blue_ratio, blue_rate, margin
    )
    null_sd = math.sqrt(r1 * (1 - r1) / green_rate + margin**2 * r0 * (1 - r0) / blue_rate)
    true_sd = math.sqrt(
        green_ratio * (1 - green_ratio) / green_rate
        + margin**2 * blue_ratio * (1 - blue_ratio) / blue_rate
    )
    z_power = z_for(power) if power != 0.5 else 0.0
    statistics = ((z_for(confidence) * null_sd + z_power * true_sd) / difference) ** 2
    events = min_events / (green_rate * green_ratio)
    samples = min_samples / min(green_rate, blue_rate)
    return max(statistics, events, samples)


def lognormal_exceedance(quantile: float, slowdown: float, margin: float, sigma: float) -> float:
    """Share of green above ``margin`` times blue's ``quantile`` when green is blue slowed by
    ``slowdown`` and latencies are lognormal with shape ``sigma`` (for planning only)."""
    return 1.0 - _NORMAL.cdf(_NORMAL.inv_cdf(quantile) + math.log(margin / slowdown) / sigma)


def _quantile(spec: BaselineSpec) -> float:
    if spec.metric not in QUANTILES:
        raise ValueError(f"gate {spec.name}: {spec.metric} is not a latency quantile")
    return QUANTILES[spec.metric]


def _too_few(spec: BaselineSpec, green: int, blue: int) -> str:
    if green < spec.min_samples or blue < spec.min_samples:
        return f"{green} green and {blue} blue samples, {spec.min_samples} needed on each side"
    return ""


def _confidence(spec: BaselineSpec) -> str:
    return f"{spec.confidence * 100:.4g}%"  # 99.99 %, not 100.0 %


def _percent(events: int, total: int) -> str:
    return f"{events / total * 100:.3g}% ({events} of {total})"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.4g} ms"
