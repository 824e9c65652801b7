"""Gates: turn a window's statistics into a verdict.

Rules this module keeps (docs/signals-and-gates.md has the numbers and why):

1. Missing data is never bad data. No samples, stale samples or a data source that is down
   give ``UNKNOWN``; only observed numbers can give ``BREACHED``.
2. A share of bad samples is breached only when it is *significantly* above the allowed
   share: the one-sided Wilson lower bound (``proportion``) must exceed it, and at least
   ``min_errors`` errors (``min_slow`` slow samples for latency) must have been seen. It is
   tested over the whole window and its last minute (``window.RECENT``, Bonferroni), so a
   clear regression does not wait for five minutes of good samples to be outweighed; a burst
   inside one second is clipped. Latency is judged per look (``proportion.LATENCY_LOOKS``).
3. Rates: the share of errors against ``above``. Latency quantiles: "p95 above 2 s" means more
   than 5 % of latencies above 2 s (p50: 50 %, p99: 1 %), counted exactly (``exceedance``).
   ``latency_mean``: the mean's lower confidence bound (``mean - z * sd / sqrt(n)``) above
   ``above``. ``latency_max``: any latency known to be above ``above``.
4. Hard down skips the statistics: a trailing run of failed samples breaches a rate gate at
   once when it is improbable at the threshold (``proportion.scan_run``, at least
   ``consecutive_failures``) *and* spans at least ``HARD_DOWN_SPAN`` seconds, so a burst of
   errors inside one second is not an outage. A hang answers nothing: when no failure of the
   run was an answer (timeouts past the check's smallest latency threshold, refused
   connections), a probe sent after the newest successful answer and still waiting past that
   threshold stands in for the run's last failure (at least one real failure; the span runs
   from the first failed probe's sending to that moment). Latency quantile and mean gates
   have the same fast path for a run of slow samples ("nearly every request is slow").
5. A health check is a state, not a rate: for ``unhealthy`` the newest sample decides.
6. ``for_`` is a share of time (``hold``). During a release's warm-up only the fast paths
   (hard down, nearly every request slow) and health states are judged.

``condition`` is the instantaneous verdict. ``verdict`` is the same, except that a breached
condition that has not yet held for ``for_`` is reported as ``UNKNOWN`` ("pending").

Defaults and why
----------------
Chosen with ``benchmarks/decision_sim.py`` (its table lists every shape and target).

* ``confidence = 0.995`` (99.99 % per look for latency) sets the speed at high volume;
  ``min_errors = 20`` and ``min_slow = 20`` the noise floor at low volume.
* ``consecutive_failures = 3`` with ``HARD_DOWN_ALPHA = 1e-3`` and ``HARD_DOWN_SPAN = 1.5``:
  failed probes over 1.5 s are hard down; ten errors inside one second at 20 requests/s are
  not. For slow runs against a 5 % share the scan asks for 5 in a row. A hang (3 s timeout,
  ``above: 2s``) is caught by 2 timeouts and a third probe past 2 s: 4.4 s median, not 5.4 s.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from watchdogd.core.gate_spec import GateMetric, GateResult, GateSpec, Verdict
from watchdogd.core.hold import Hold
from watchdogd.core.proportion import (
    HARD_DOWN_ALPHA,
    LATENCY_LOOKS,
    clipped,
    lower_bound,
    per_look,
    scan_run,
    wilson_lower_bound,
)
from watchdogd.core.window import RECENT, WindowStats

__all__ = [
    "HARD_DOWN_ALPHA",
    "HARD_DOWN_SPAN",
    "LATENCY_LOOKS",
    "Gate",
    "GateMetric",
    "GateResult",
    "GateSpec",
    "Verdict",
    "wilson_lower_bound",
]

HARD_DOWN_SPAN = 1.5
"""Seconds a failure run (or a slow run) must span, first to newest sample, to count as hard
down. A probe that fails looks again half an interval later (``Poller``), so a dead service
probed every second shows failures 0.5 s apart and is hard down 1.5 s after its first failed
probe; a burst of errors shorter than 1.5 s never is."""


_RATES = {GateMetric.ERROR_RATE: "error ratio", GateMetric.FAILURE_RATE: "failure ratio"}
_LATENCIES = {
    GateMetric.LATENCY_P50: "p50",
    GateMetric.LATENCY_P95: "p95",
    GateMetric.LATENCY_P99: "p99",
    GateMetric.LATENCY_MEAN: "mean",
    GateMetric.LATENCY_MAX: "max",
}


_QUANTILE_SHARE = {
    GateMetric.LATENCY_P50: 0.5,
    GateMetric.LATENCY_P95: 0.05,
    GateMetric.LATENCY_P99: 0.01,
    # The mean's fast path: a run of samples above the threshold as improbable as for p50.
    GateMetric.LATENCY_MEAN: 0.5,
}

_Condition = tuple["Verdict", float | None, float | None, str]


class Gate:
    """Evaluates one :class:`GateSpec`; remembers only its ``for:`` timer (``hold``)."""

    def __init__(self, spec: GateSpec) -> None:
        self.spec = spec
        # (confidence, z) of the whole window and of its last minute, one of its five minutes:
        # Bonferroni (0.995 -> 0.999). Latency: per look (``LATENCY_LOOKS``, 0.995 -> 0.9999).
        self._z = NormalDist().inv_cdf(spec.confidence)
        self._rate_levels = _levels(spec.confidence)
        self._latency_levels = _levels(per_look(spec.confidence, LATENCY_LOOKS))
        self._hold = Hold(spec.for_)

    def reset(self) -> None:
        """Forget a pending breach (for example when a new release starts baking)."""
        self._hold.reset()

    def evaluate(
        self,
        stats: WindowStats,
        now: float,
        source_up: bool = True,
        *,
        warming_up: bool = False,
    ) -> GateResult:
        """Judge ``stats`` at ``now``. ``source_up=False`` means the data source itself failed;
        ``warming_up`` judges only the fast paths and health states (module docstring)."""
        spec = self.spec
        condition, value, threshold, reason = self._condition(stats, now, source_up, warming_up)
        samples = stats.latency_count if spec.metric in _LATENCIES else stats.count
        verdict = condition
        breached = condition is Verdict.BREACHED
        if spec.for_ > 0.0:
            holds, held, share = self._hold.update(now, breached)
            if breached and not holds:
                verdict = Verdict.UNKNOWN
                reason = (
                    f"{reason}; pending: breached {_percent(share)} of the last "
                    f"{_seconds(spec.for_)} over {_seconds(held)}, needs 80% over "
                    f"{_seconds(spec.for_)}"
                )
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
        self, stats: WindowStats, now: float, source_up: bool, warming_up: bool
    ) -> _Condition:
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
            return self._rate(stats, warming_up)
        if spec.metric in _LATENCIES:
            return self._latency(stats, warming_up)
        if spec.metric is GateMetric.UNHEALTHY:
            return self._unhealthy(stats)
        if warming_up:
            return Verdict.UNKNOWN, stats.last_value, spec.above, "warming up: not judged yet"
        return self._value(stats)

    def _rate(self, stats: WindowStats, warming_up: bool) -> _Condition:
        spec = self.spec
        above = _above(spec)
        what = _RATES[spec.metric]
        n, errors, ratio = stats.count, stats.errors, stats.error_ratio
        if n == 0 or ratio is None:
            return Verdict.UNKNOWN, None, above, "no samples in the window"
        run = stats.consecutive_failures
        span = stats.run_span
        needed = scan_run(above, n, spec.consecutive_failures)
        if spec.consecutive_failures and run >= needed and span >= HARD_DOWN_SPAN:
            return (
                Verdict.BREACHED,
                ratio,
                above,
                f"{run} consecutive failures over {_seconds(span)} (hard down); "
                f"{what} {_percent(ratio)} over {n} samples",
            )
        silent = stats.hang_span
        if spec.consecutive_failures and run >= max(1, needed - 1) and silent >= HARD_DOWN_SPAN:
            # A hang: the probe that will fail next stands in for the run's last failure once
            # it has waited past the latency threshold, as nothing has answered since.
            return (
                Verdict.BREACHED,
                ratio,
                above,
                f"{run} consecutive failures and {stats.unanswered} probe(s) waiting past "
                f"{_seconds(stats.thresholds[0])}, nothing answered over {_seconds(silent)} "
                f"(hard down: a hang); {what} {_percent(ratio)} over {n} samples",
            )
        if warming_up:
            return Verdict.UNKNOWN, ratio, above, "warming up: only hard down is judged"
        if n < spec.min_samples:
            return (
                Verdict.UNKNOWN,
                ratio,
                above,
                f"{n} samples in the window, {spec.min_samples} needed",
            )
        found = self._share_test(
            what,
            above,
            (stats.counts_by_second, stats.errors_by_second),
            0,
            spec.min_errors,
            levels=self._rate_levels,
        )
        if found is not None:
            return Verdict.BREACHED, ratio, above, found
        bound = lower_bound(errors, n, self._z)
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
        return Verdict.OK, ratio, above, f"{numbers} <= {_percent(above)} over {n} samples"

    def _share_test(
        self,
        what: str,
        allowed: float,
        seconds: tuple[tuple[int, ...], tuple[int, ...]],
        waiting: int,
        min_bad: int,
        *,
        levels: tuple[tuple[float, float], tuple[float, float]],
    ) -> str | None:
        """The reason a share of bad samples is convincingly above ``allowed`` in the whole
        window or in its last minute, or None. ``seconds`` holds (samples, bad) per second,
        oldest first; ``waiting`` probes past a threshold count as bad samples of their own.
        Both tests need ``min_bad`` bad samples and ``min_samples`` samples; ``levels`` holds
        (confidence, z) of each."""
        spec = self.spec
        recent = (seconds[0][-RECENT:], seconds[1][-RECENT:])
        tests = ((seconds, *levels[0], ""), (recent, *levels[1], f" in the last {RECENT} s"))
        for part, confidence, z, where in tests:
            bad, n = clipped(allowed, part, waiting)
            if n < spec.min_samples or bad < min_bad or n == 0:
                continue
            bound = lower_bound(bad, n, z)
            if bound > allowed:
                return (
                    f"{what} {_percent(bad / n)} (Wilson lower bound {_percent(bound)} at "
                    f"{confidence * 100:.6g}%) > {_percent(allowed)} over {n} samples{where}"
                )
        return None

    def _latency(self, stats: WindowStats, warming_up: bool) -> _Condition:
        spec = self.spec
        above = _above(spec)
        which = _LATENCIES[spec.metric]
        value = stats.latency(which)
        if above not in stats.thresholds:
            # The controller builds every window with its gates' thresholds; without one the
            # exact counts do not exist, and a guess could breach falsely.
            return Verdict.UNKNOWN, value, above, f"the window does not count latencies > {above}"
        i = stats.thresholds.index(above)
        seen, slow = stats.seen[i], stats.slow[i]
        if seen == 0:
            return Verdict.UNKNOWN, value, above, "no latencies in the window"
        if warming_up:
            # A cold cache or a JIT is slow on purpose: only hard down is judged meanwhile.
            return Verdict.UNKNOWN, value, above, "warming up: only hard down is judged"
        share = _QUANTILE_SHARE.get(spec.metric)
        run, span = stats.slow_run[i], stats.slow_run_span[i]
        if (
            share is not None
            and spec.consecutive_failures
            and run >= scan_run(share, seen, spec.consecutive_failures)
            and span >= HARD_DOWN_SPAN
        ):
            return (
                Verdict.BREACHED,
                value,
                above,
                f"nearly every request is slow: {run} in a row above {_seconds(above)} over "
                f"{_seconds(span)}; {slow} of {seen} latencies above it",
            )
        if seen < spec.min_samples:
            return (
                Verdict.UNKNOWN,
                value,
                above,
                f"{seen} latencies in the window, {spec.min_samples} needed",
            )
        if spec.metric is GateMetric.LATENCY_MAX:
            if slow:
                return Verdict.BREACHED, value, above, f"{slow} latencies > {_seconds(above)}"
            return Verdict.OK, value, above, f"no latency > {_seconds(above)} over {seen}"
        if spec.metric is GateMetric.LATENCY_MEAN:
            return self._mean(stats, above)
        assert share is not None  # noqa: S101 - p50, p95, p99 all have one
        found = self._share_test(
            f"share of latencies > {_seconds(above)}",
            share,
            (stats.latencies_by_second, stats.slow_by_second[i]),
            seen - stats.latency_count,  # probes still waiting past the threshold
            spec.min_slow,
            levels=self._latency_levels,
        )
        shown = f"latency {which} {_seconds(value)}" if value is not None else f"latency {which}"
        if found is not None:
            return Verdict.BREACHED, value, above, f"{shown}: {found} (allowed by {which})"
        return (
            Verdict.OK,
            value,
            above,
            f"{shown}: {slow} of {seen} latencies > {_seconds(above)}, not convincingly more "
            f"than the {_percent(share)} {which} allows",
        )

    def _mean(self, stats: WindowStats, above: float) -> _Condition:
        mean, sd, n = stats.mean, stats.latency_sd, stats.latency_count
        if mean is None or sd is None or n < self.spec.min_samples:
            return Verdict.UNKNOWN, mean, above, f"{n} latencies in the window"
        bound = mean - self._z * sd / math.sqrt(n)
        numbers = (
            f"latency mean {_seconds(mean)} (lower bound {_seconds(max(bound, 0.0))} at "
            f"{_percent(self.spec.confidence)}) over {n} samples"
        )
        if bound > above:
            return Verdict.BREACHED, mean, above, f"{numbers} > {_seconds(above)}"
        return Verdict.OK, mean, above, f"{numbers}, not convincingly > {_seconds(above)}"

    def _unhealthy(self, stats: WindowStats) -> _Condition:
        # A state, not a rate: the newest sample decides; `for_` is how to ask for patience.
        if stats.last_ok is None:
            return Verdict.UNKNOWN, None, None, "no health sample in the window"
        if stats.last_ok:
            return Verdict.OK, 0.0, None, "healthy"
        run = stats.consecutive_failures
        return Verdict.BREACHED, 1.0, None, f"unhealthy ({run} failed checks in a row)"

    def _value(self, stats: WindowStats) -> _Condition:
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


def _levels(confidence: float) -> tuple[tuple[float, float], tuple[float, float]]:
    recent = 1.0 - (1.0 - confidence) / 5.0
    return (confidence, NormalDist().inv_cdf(confidence)), (recent, NormalDist().inv_cdf(recent))


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
