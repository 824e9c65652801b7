"""Gates: turn a window's statistics into a verdict.

Rules this module keeps:

1. Missing data is never bad data. No samples, stale samples or a data source that is down
   give ``UNKNOWN``; only observed numbers can give ``BREACHED``.
2. A rate is breached only when it is *significantly* above the threshold: the one-sided Wilson
   score lower bound of the error ratio must exceed it, and at least ``min_errors`` errors must
   have been seen. One failed request out of 60 (1.7 %) does not breach a 1 % gate.
3. A service that is hard down should not have to wait for statistics: a trailing run of failed
   samples breaches a rate gate at once, whatever ``min_samples`` says. The run must be
   improbable at the threshold rate even when one looks for it anywhere in the window (see
   ``HARD_DOWN_ALPHA``).
4. A health check is a state, not a rate: for ``unhealthy`` the newest sample decides, and a
   failed one is already a breached condition, so ``consecutive_failures`` adds nothing there.
   ``for_`` is how an operator asks for patience.
5. The only state is the ``for:`` timer. It starts when the instantaneous condition becomes
   breached and resets on anything else, including UNKNOWN and a down source.

Verdicts
--------
``condition`` is the instantaneous verdict. ``verdict`` is the same, except that a breached
condition that has not yet held for ``for_`` seconds is reported as ``UNKNOWN`` ("pending"):
it is not known to be fine, so nothing downstream should treat it as a pass.

For rates, ``GateResult.value`` is the observed ratio (the unit of the threshold); the Wilson
bound that the decision used is in ``reason``. For the fast path it is still the ratio.

Defaults and why
----------------
The defaults differ from the first draft (confidence 0.999, min_errors 3). They were chosen
with ``benchmarks/decision_sim.py`` (a 1 % error-rate gate over a 300 x 1 s window, healthy
traffic at 0.5 % errors, 1 and 20 samples/s) and a Poisson count of how often the window's
error count crosses the breach level by chance: about ``288 * lam * P(X = k - 1)`` per day for
``lam`` background errors per window and breach level ``k``.

* ``confidence = 0.995`` (z = 2.58) sets the speed at high volume. With 6000 samples in the
  window, 5 % errors must outweigh five minutes of good samples before the lower bound passes
  1 %: about 60 s at 0.999 (a coin flip against a 60 s target), about 53 s at 0.995.
* ``min_errors = 20`` sets the noise floor at low volume. Wilson alone, at any confidence
  fast enough for the line above, breaches on chance clusters when the window holds a few
  hundred samples or fewer: with min_errors 3 and 0.999, 0.06 false breaches a day at
  1 sample/s and 0.4 a day at 0.1 samples/s; at 0.995 and min_errors 10, still 0.28 a day near
  1.5 samples/s. Twenty errors keep every rate from 0.1 to 20 samples/s below 0.01 false
  breaches a day. The price: a window that holds few samples needs 20 errors before the
  statistics speak (at 1 sample/s, about 7 % errors; at one probe per 10 s, two thirds of the
  probes). The hard-down fast path still catches outages at any volume, and a low-volume probe
  gate whose healthy failure rate is near zero can safely set a smaller ``min_errors``.
* ``consecutive_failures = 3`` with ``HARD_DOWN_ALPHA = 1e-3``: three failed samples in a row
  at 1 sample/s is caught in 3 s. Its cost is 86400 * rate * 0.005**3 chance runs a day at
  0.5 % background errors (0.011 at 1 sample/s, 0.03 at 3 samples/s), which no choice of run
  length can avoid while still catching a hard-down service in three samples. Above about
  3.3 samples/s a full window asks for four (one chance run in about 1000 days at 20/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

from watchdogd.core.window import WindowStats

__all__ = [
    "HARD_DOWN_ALPHA",
    "Gate",
    "GateMetric",
    "GateResult",
    "GateSpec",
    "Verdict",
    "wilson_lower_bound",
]

HARD_DOWN_ALPHA = 1e-3
"""Chance we accept that a failure run this long shows up somewhere in a full window of a
service whose true error rate sits exactly at the threshold (a Bonferroni bound over the
run's possible starting points: ``above ** run * count <= HARD_DOWN_ALPHA``)."""


class Verdict(StrEnum):
    OK = "ok"
    BREACHED = "breached"
    UNKNOWN = "unknown"


class GateMetric(StrEnum):
    ERROR_RATE = "error_rate"
    FAILURE_RATE = "failure_rate"
    LATENCY_P50 = "latency_p50"
    LATENCY_P95 = "latency_p95"
    LATENCY_P99 = "latency_p99"
    LATENCY_MEAN = "latency_mean"
    LATENCY_MAX = "latency_max"
    UNHEALTHY = "unhealthy"
    VALUE = "value"


_RATES = {GateMetric.ERROR_RATE: "error ratio", GateMetric.FAILURE_RATE: "failure ratio"}
_LATENCIES = {
    GateMetric.LATENCY_P50: "p50",
    GateMetric.LATENCY_P95: "p95",
    GateMetric.LATENCY_P99: "p99",
    GateMetric.LATENCY_MEAN: "mean",
    GateMetric.LATENCY_MAX: "max",
}


@dataclass(frozen=True)
class GateSpec:
    """What one gate checks. Ratios are 0..1, latencies seconds, values raw."""

    name: str
    metric: GateMetric
    above: float | None = None
    below: float | None = None
    for_: float = 0.0
    min_samples: int = 20
    confidence: float = 0.995
    min_errors: int = 20
    consecutive_failures: int = 3
    max_staleness: float | None = None

    def __post_init__(self) -> None:
        if self.metric is GateMetric.VALUE:
            if self.above is None and self.below is None:
                raise ValueError(f"gate {self.name}: a value gate needs above or below")
        elif self.below is not None:
            raise ValueError(f"gate {self.name}: below is only for value gates")
        elif self.metric is not GateMetric.UNHEALTHY and self.above is None:
            raise ValueError(f"gate {self.name}: {self.metric} needs above")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"gate {self.name}: confidence must be in (0, 1)")
        if self.for_ < 0.0 or self.min_samples < 0 or self.min_errors < 0:
            raise ValueError(f"gate {self.name}: for, min_samples and min_errors must be >= 0")
        if self.consecutive_failures < 0:
            raise ValueError(f"gate {self.name}: consecutive_failures must be >= 0")


@dataclass(frozen=True)
class GateResult:
    """One evaluation: the verdict, the instantaneous condition and the numbers behind it."""

    gate: str
    verdict: Verdict
    condition: Verdict
    value: float | None
    threshold: float | None
    reason: str
    samples: int


def wilson_lower_bound(errors: int, n: int, confidence: float) -> float:
    """One-sided lower bound of the Wilson score interval for ``errors`` out of ``n``."""
    if not 0 <= errors <= n:
        raise ValueError(f"need 0 <= errors <= n, got {errors} of {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return _wilson_lower_bound(errors, n, NormalDist().inv_cdf(confidence))


def _wilson_lower_bound(errors: int, n: int, z: float) -> float:
    if errors == 0:
        return 0.0  # exact; the formula would only add rounding noise around zero
    p = errors / n
    z2n = z * z / n
    centre = p + z2n / 2.0
    spread = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return max(0.0, (centre - spread) / (1.0 + z2n))


class Gate:
    """Evaluates one :class:`GateSpec`; remembers only when a breach became pending."""

    def __init__(self, spec: GateSpec) -> None:
        self.spec = spec
        self._z = NormalDist().inv_cdf(spec.confidence)
        self._pending_since: float | None = None

    def reset(self) -> None:
        """Forget a pending breach (for example when a new release starts baking)."""
        self._pending_since = None

    def evaluate(self, stats: WindowStats, now: float, source_up: bool = True) -> GateResult:
        """Judge ``stats`` at ``now``. ``source_up=False`` means the data source itself failed."""
        spec = self.spec
        condition, value, threshold, reason = self._condition(stats, now, source_up)
        samples = stats.latency_count if spec.metric in _LATENCIES else stats.count
        verdict = condition
        if condition is Verdict.BREACHED:
            if self._pending_since is None or now < self._pending_since:
                self._pending_since = now
            held = now - self._pending_since
            if held < spec.for_:
                verdict = Verdict.UNKNOWN
                reason = f"{reason}; pending for {_seconds(held)} of {_seconds(spec.for_)}"
        else:
            self._pending_since = None
        return GateResult(
            gate=spec.name,
            verdict=verdict,
            condition=condition,
            value=value,
            threshold=threshold,
            reason=reason,
            samples=samples,
        )

    def _condition(
        self, stats: WindowStats, now: float, source_up: bool
    ) -> tuple[Verdict, float | None, float | None, str]:
        spec = self.spec
        if not source_up:
            return Verdict.UNKNOWN, None, spec.above, "data source is down"
        if spec.max_staleness is not None:
            if stats.last_sample_at is None:
                return Verdict.UNKNOWN, None, spec.above, "no samples yet"
            age = now - stats.last_sample_at
            if age > spec.max_staleness:
                return (
                    Verdict.UNKNOWN,
                    None,
                    spec.above,
                    f"newest sample is {_seconds(age)} old, limit {_seconds(spec.max_staleness)}",
                )
        if spec.metric in _RATES:
            return self._rate(stats)
        if spec.metric in _LATENCIES:
            return self._latency(stats)
        if spec.metric is GateMetric.UNHEALTHY:
            return self._unhealthy(stats)
        return self._value(stats)

    def _rate(self, stats: WindowStats) -> tuple[Verdict, float | None, float | None, str]:
        spec = self.spec
        above = _above(spec)
        what = _RATES[spec.metric]
        n, errors, ratio = stats.count, stats.errors, stats.error_ratio
        if n == 0 or ratio is None:
            return Verdict.UNKNOWN, None, above, "no samples in the window"
        run = stats.consecutive_failures
        if spec.consecutive_failures and run >= _hard_down_run(spec, n):
            return (
                Verdict.BREACHED,
                ratio,
                above,
                f"{run} consecutive failures (hard down); "
                f"{what} {_percent(ratio)} over {n} samples",
            )
        if n < spec.min_samples:
            return (
                Verdict.UNKNOWN,
                ratio,
                above,
                f"{n} samples in the window, {spec.min_samples} needed",
            )
        bound = _wilson_lower_bound(errors, n, self._z)
        numbers = (
            f"{what} {_percent(ratio)} (Wilson lower bound {_percent(bound)} "
            f"at {_percent(spec.confidence)})"
        )
        if errors < spec.min_errors:
            return (
                Verdict.OK,
                ratio,
                above,
                f"{numbers} over {n} samples; only {errors} of the {spec.min_errors} errors "
                "needed to decide",
            )
        if bound > above:
            return Verdict.BREACHED, ratio, above, f"{numbers} > {_percent(above)} over {n} samples"
        return Verdict.OK, ratio, above, f"{numbers} <= {_percent(above)} over {n} samples"

    def _latency(self, stats: WindowStats) -> tuple[Verdict, float | None, float | None, str]:
        spec = self.spec
        above = _above(spec)
        which = _LATENCIES[spec.metric]
        value = stats.latency(which)
        n = stats.latency_count
        if value is None or n < spec.min_samples:
            return (
                Verdict.UNKNOWN,
                value,
                above,
                f"{n} latencies in the window, {spec.min_samples} needed",
            )
        if value > above:
            return (
                Verdict.BREACHED,
                value,
                above,
                f"latency {which} {_seconds(value)} > {_seconds(above)} over {n} samples",
            )
        return (
            Verdict.OK,
            value,
            above,
            f"latency {which} {_seconds(value)} <= {_seconds(above)} over {n} samples",
        )

    def _unhealthy(self, stats: WindowStats) -> tuple[Verdict, float | None, float | None, str]:
        # A health check is a state, not a rate: the newest sample decides, so min_samples and
        # the statistics do not apply. `for_` is how an operator asks for patience.
        if stats.last_ok is None:
            return Verdict.UNKNOWN, None, None, "no health sample in the window"
        run = stats.consecutive_failures
        if stats.last_ok:
            return Verdict.OK, 0.0, None, "healthy"
        return Verdict.BREACHED, 1.0, None, f"unhealthy ({run} failed checks in a row)"

    def _value(self, stats: WindowStats) -> tuple[Verdict, float | None, float | None, str]:
        spec = self.spec
        value = stats.last_value
        if value is None:
            return Verdict.UNKNOWN, None, spec.above, "no value in the window"
        if spec.above is not None and value > spec.above:
            return Verdict.BREACHED, value, spec.above, f"value {value:g} > {spec.above:g}"
        if spec.below is not None and value < spec.below:
            return Verdict.BREACHED, value, spec.below, f"value {value:g} < {spec.below:g}"
        limits = " and ".join(
            f"{word} {limit:g}"
            for word, limit in (("<=", spec.above), (">=", spec.below))
            if limit is not None
        )
        threshold = spec.above if spec.above is not None else spec.below
        return Verdict.OK, value, threshold, f"value {value:g} {limits}"


def _hard_down_run(spec: GateSpec, n: int) -> int:
    """The shortest failure run that counts as hard down in a window of ``n`` samples.

    A run of k failures starts at any of about n points; at the threshold rate each such run
    has probability ``above ** k``. Requiring ``above ** k * n <= HARD_DOWN_ALPHA`` keeps
    busy windows from mistaking background errors for an outage; small windows get the
    configured ``consecutive_failures``.
    """
    above = _above(spec)
    if above <= 0.0:
        return spec.consecutive_failures
    if above >= 1.0:
        return n + 1  # a run can never show a ratio above 100 %
    scan = math.ceil(math.log(HARD_DOWN_ALPHA / n) / math.log(above))
    return max(spec.consecutive_failures, scan)


def _above(spec: GateSpec) -> float:
    # GateSpec.__post_init__ already refuses rate and latency gates without `above`; this
    # narrows the type for mypy without an assert that `python -O` would strip.
    if spec.above is None:
        raise ValueError(f"gate {spec.name}: {spec.metric} needs above")
    return spec.above


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.3g}%"


def _seconds(seconds: float) -> str:
    if seconds < 1.0:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s"
