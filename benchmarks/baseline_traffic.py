"""Simulated canary traffic and the gates that judge it, for ``baseline_sim.py``'s table
(baseline gates against absolute gates) and ``baseline_looks.py``.

Traffic: ``rate`` requests a second in total, a share ``green_share`` of them to green (the new
release), the rest to blue, split evenly in time. Healthy requests fail with probability
0.3 % and take a lognormal time with median 150 ms and shape 0.6 (p95 about 400 ms). The
gates, evaluated once per simulated second on a 300 s sliding window per colour that starts
empty when the canary starts:

* baseline: ``compare: baseline`` on ``error_rate`` (tolerance 50 %) and ``latency_p95``
  (tolerance 20 %), from ``watchdogd.core.baseline`` with its defaults;
* absolute: ``error_rate above 1 %`` and ``latency_p95 above 2 s`` on green alone, the
  ``watchdogd.core.gates.Gate`` of the shipped defaults.

Speed: 24 h at 100 requests/s is 8.6 M requests per seed, too many for pure Python one by one.
Nothing is approximated, but only what a gate can see is drawn: errors by their gaps (a
geometric draw per error, not per request), and latencies only above ``TAIL_CUT`` (blue's
true 85th percentile), where every quantile and threshold the gates use lies; the count of
samples below the cut is known from the request count. A gate is called whenever it could
breach: a rate gate needs ``min_errors`` errors or a failure run, a latency gate a slow sample.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from watchdogd.core.baseline import (
    MIN_REFERENCE_TAIL,
    BaselineSpec,
    Counts,
    LatencyEvidence,
    compare_error_rates,
    compare_latency,
    latency_threshold,
)
from watchdogd.core.gates import Gate, GateMetric, GateSpec, Verdict
from watchdogd.core.window import WindowStats

__all__ = ["HEALTHY", "HORIZON", "WINDOW", "Release", "Run", "simulate"]
WINDOW = 300
HORIZON = 900
BASE_ERRORS = GateSpec(name="green:error_rate", metric=GateMetric.ERROR_RATE, above=0.01)
BASE_LATENCY = GateSpec(name="green:latency_p95", metric=GateMetric.LATENCY_P95, above=2.0)
ERRORS = BaselineSpec(name="baseline:error_rate", metric=GateMetric.ERROR_RATE)
LATENCY = BaselineSpec(name="baseline:latency_p95", metric=GateMetric.LATENCY_P95)
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Release:
    """What a release returns: an error probability and a lognormal latency."""

    error_rate: float = 0.003
    latency_median: float = 0.15
    latency_sigma: float = 0.6


HEALTHY = Release()
TAIL_CUT = HEALTHY.latency_median * math.exp(HEALTHY.latency_sigma * _NORMAL.inv_cdf(0.85))


class _Colour:
    """One colour's requests: even arrivals, geometric gaps between errors, the latency tail."""

    def __init__(self, rate: float, release: Release, rng: random.Random, window: int) -> None:
        self.rate, self.release, self.rng, self.window = rate, release, rng, window
        self.arrived = 0.0  # requests so far, fractional: arrivals are evenly spaced
        self.end = 0  # requests so far, whole: the index of the next request
        cut = (math.log(TAIL_CUT) - math.log(release.latency_median)) / release.latency_sigma
        self.below_cut = _NORMAL.cdf(cut)
        self.next_error = self._next(release.error_rate, 0)
        self.next_slow = self._next(1.0 - self.below_cut, 0)
        self.last_error, self.run = -2, 0
        self.per_second: deque[tuple[int, int, list[float]]] = deque()
        self.count = self.errors = 0
        self.tail: list[float] = []  # sorted latencies above TAIL_CUT in the window

    def _next(self, p: float, first: int) -> int:
        """Index of the next event at or after request ``first``, each one with chance ``p``."""
        if p <= 0.0:
            return 1 << 62
        if p >= 1.0:
            return first
        return first + int(math.log(1.0 - self.rng.random()) / math.log1p(-p))

    def second(self) -> None:
        """Add one second of requests and expire the second that left the window."""
        self.arrived += self.rate
        start, end = self.end, int(self.arrived)
        release, rng = self.release, self.rng
        errors = 0
        while self.next_error < end:
            self.run = self.run + 1 if self.next_error == self.last_error + 1 else 1
            self.last_error = self.next_error
            errors += 1
            self.next_error = self._next(release.error_rate, self.next_error + 1)
        slow: list[float] = []
        while self.next_slow < end:
            u = self.below_cut + (1.0 - self.below_cut) * rng.random()
            z = _NORMAL.inv_cdf(min(u, 1.0 - 1e-12))
            latency = release.latency_median * math.exp(release.latency_sigma * z)
            slow.append(latency)
            insort(self.tail, latency)
            self.next_slow = self._next(1.0 - self.below_cut, self.next_slow + 1)
        self.end = end
        self.per_second.append((end - start, errors, slow))
        self.count += end - start
        self.errors += errors
        if len(self.per_second) > self.window:
            old_n, old_errors, old_slow = self.per_second.popleft()
            self.count -= old_n
            self.errors -= old_errors
            for latency in old_slow:
                del self.tail[bisect_right(self.tail, latency) - 1]

    @property
    def trailing_run(self) -> int:
        """Failed requests in a row up to the newest one."""
        return self.run if self.last_error == self.end - 1 else 0

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile, or None when it lies below TAIL_CUT (not drawn)."""
        from_top = self.count - math.ceil(q * self.count)
        if self.count == 0 or from_top >= len(self.tail):
            return None
        return self.tail[len(self.tail) - 1 - from_top]

    def above(self, threshold: float) -> int:
        return len(self.tail) - bisect_right(self.tail, threshold)


@dataclass(frozen=True)
class Run:
    """One seeded run: transitions into BREACHED and the first breach, per family of gates."""

    baseline_triggers: int
    absolute_triggers: int
    baseline_detected: int | None
    absolute_detected: int | None
    # Which baseline test breached at each baseline trigger: the error-rate or the latency one.
    rate_triggers: int = 0
    latency_triggers: int = 0


def simulate(
    rate: float,
    green_share: float,
    green: Release,
    seconds: int,
    seed: int,
    *,
    window: int = WINDOW,
    stop_at_detection: bool = False,
    absolute: bool = True,
) -> Run:
    """Run ``seconds`` of canary traffic with ``green`` beside a healthy blue. ``absolute``
    False leaves the absolute gates out (they cost 5 times the baseline ones)."""
    rng = random.Random(seed)
    g = _Colour(rate * green_share, green, rng, window)
    b = _Colour(rate * (1.0 - green_share), HEALTHY, rng, window)
    gates = [Gate(BASE_ERRORS), Gate(BASE_LATENCY)]
    was = [False, False]
    triggers = [0, 0]
    by_test = {"errors": 0, "latency": 0}
    detected: list[int | None] = [None, None]
    for now in range(1, seconds + 1):
        g.second()
        b.second()
        which = _baseline(g, b)
        if which is not None and not was[0]:
            by_test[which] += 1
        for family, breached in enumerate(
            (which is not None, absolute and _absolute(gates, g, now))
        ):
            if breached and not was[family]:
                triggers[family] += 1
                if detected[family] is None:
                    detected[family] = now
            was[family] = breached
        if stop_at_detection and None not in detected[: 2 if absolute else 1]:
            break
    return Run(
        triggers[0], triggers[1], detected[0], detected[1], by_test["errors"], by_test["latency"]
    )


def _baseline(g: _Colour, b: _Colour) -> str | None:
    """Which baseline test breaches now ("errors" first, then "latency"), or None."""
    if g.errors >= ERRORS.min_errors:
        result = compare_error_rates(ERRORS, Counts(g.count, g.errors), Counts(b.count, b.errors))
        if result.verdict is Verdict.BREACHED:
            return "errors"
    return "latency" if _latency_breached(g, b) else None


def _latency_breached(g: _Colour, b: _Colour) -> bool:
    if b.count - math.ceil(0.95 * b.count) < MIN_REFERENCE_TAIL:
        return False  # compare_latency says UNKNOWN: blue has no reference yet
    blue_q = b.quantile(0.95)
    if blue_q is None:
        # Blue's p95 below the cut: possible only while blue has a couple of hundred samples
        # (15 % of them are drawn, 5 % + 10 are needed), at the start of a canary. Skipping
        # this evaluation can only delay a detection, never add a false trigger.
        return False
    threshold = latency_threshold(LATENCY, blue_q)
    if threshold <= TAIL_CUT:
        raise RuntimeError("the latency threshold lies below TAIL_CUT: lower the cut")
    slow = g.above(threshold)
    if slow < LATENCY.min_errors:
        return False  # compare_latency says OK: too few slow samples to decide
    blue_tail = b.count - math.ceil(0.95 * b.count)
    if slow * b.count <= blue_tail * g.count:
        return False  # green's share is not above blue's: z <= 0, no breach (skips the reason)
    evidence = LatencyEvidence(Counts(g.count, slow), b.count, blue_q, threshold)
    return compare_latency(LATENCY, evidence).verdict is Verdict.BREACHED


def _absolute(gates: Sequence[Gate], g: _Colour, now: int) -> bool:
    error_gate, latency_gate = gates
    run = g.trailing_run
    could_breach_errors = g.errors >= BASE_ERRORS.min_errors or (
        BASE_ERRORS.consecutive_failures and run >= BASE_ERRORS.consecutive_failures
    )
    could_breach_latency = g.above(_above(BASE_LATENCY)) > 0
    if not (could_breach_errors or could_breach_latency):
        return False
    # Below the cut the p95 is not drawn; it is at most TAIL_CUT, far under the 2 s gate.
    p95 = g.quantile(0.95) or TAIL_CUT
    limit = _above(BASE_LATENCY)
    stats = WindowStats(
        count=g.count,
        errors=g.errors,
        error_ratio=g.errors / g.count if g.count else None,
        latency_count=g.count,
        p50=None,
        p95=p95 if g.count else None,
        p99=None,
        mean=None,
        max=g.tail[-1] if g.tail else None,
        consecutive_failures=run,
        last_ok=run == 0 if g.count else None,
        last_sample_at=float(now),
        last_value=None,
        # What the gates of issue #12 read: the failure run's time span (request times are
        # even, so index / rate), the window second by second, and the counts above 2 s. The
        # slow-run fast path is left out (no run of 2 s answers in these shapes).
        run_started_at=(g.last_error - run + 1) / g.rate if run else None,
        run_last_at=g.last_error / g.rate if run else None,
        counts_by_second=tuple(n for n, _, _ in g.per_second),
        errors_by_second=tuple(e for _, e, _ in g.per_second),
        latencies_by_second=tuple(n for n, _, _ in g.per_second),
        slow_by_second=(tuple(sum(1 for x in tail if x > limit) for _, _, tail in g.per_second),),
        thresholds=(limit,),
        slow=(g.above(limit),),
        seen=(g.count,),
        slow_run=(0,),
        slow_run_span=(0.0,),
    )
    return any(
        gate.evaluate(stats, float(now)).verdict is Verdict.BREACHED
        for gate, could in ((error_gate, could_breach_errors), (latency_gate, could_breach_latency))
        if could
    )


def _above(spec: GateSpec) -> float:
    if spec.above is None:
        raise ValueError(f"{spec.name} needs above")
    return spec.above
