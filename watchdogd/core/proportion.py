"""The statistics behind rate and latency gates: a proportion judged against a threshold.

Both kinds of gate ask the same question of a window: is the share of "bad" samples (errors;
latencies above a threshold) *convincingly* above an allowed share? "p95 above 2 s" is "more
than 5 % of requests slower than 2 s"; "error rate above 1 %" is "more than 1 % errors".

* :func:`wilson_lower_bound` is the one-sided lower bound of the Wilson score interval;
  a proportion is convincingly above ``allowed`` when even that bound is.
* :func:`scan_run` is how long a trailing run of bad samples must be before it cannot be
  chance: at the allowed share each run of ``k`` has probability ``allowed ** k`` at each of
  the window's ``n`` starting points; the run must satisfy ``allowed ** k * n <= alpha``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = [
    "BURST_FACTOR",
    "HARD_DOWN_ALPHA",
    "LATENCY_LOOKS",
    "clipped",
    "lower_bound",
    "per_look",
    "scan_run",
    "wilson_lower_bound",
]

HARD_DOWN_ALPHA = 1e-3
"""Chance we accept that a bad run this long shows up somewhere in a full window of a service
whose true share sits exactly at the threshold (a Bonferroni bound over the run's possible
starting points: ``allowed ** run * count <= HARD_DOWN_ALPHA``)."""


LATENCY_LOOKS = 50
"""Latency share tests run at ``per_look(confidence, LATENCY_LOOKS)`` (0.995 -> 0.9999). A gate
re-tests its sliding window every second, and a per-look bound is crossed by chance far more
often than once per window (a scan statistic): a healthy heavy tail with a true p95 of 1.6 s
(lognormal sigma 1.5: 3.64 % above 2 s) at 300 samples a window reaches the 25 slow samples
the 99.5 % bound needs 0.55 times a day (300 simulated days of one sample a second; 4 false
triggers in 10 days of decision_sim's probe). At 99.99 % it needs 30: once in 300 days.
Latency thresholds sit right above a healthy tail; error gates keep ``confidence`` per look,
their healthy rates sitting at half the threshold or below, where its margin holds."""


def per_look(confidence: float, looks: int) -> float:
    """``confidence`` Bonferroni-corrected over ``looks`` looks at a sliding window."""
    return 1.0 - (1.0 - confidence) / looks


def wilson_lower_bound(errors: int, n: int, confidence: float) -> float:
    """One-sided lower bound of the Wilson score interval for ``errors`` out of ``n``."""
    if not 0 <= errors <= n:
        raise ValueError(f"need 0 <= errors <= n, got {errors} of {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return lower_bound(errors, n, NormalDist().inv_cdf(confidence))


def lower_bound(errors: int, n: int, z: float) -> float:
    """:func:`wilson_lower_bound` with the normal quantile ``z`` already computed."""
    if errors == 0:
        return 0.0  # exact; the formula would only add rounding noise around zero
    p = errors / n
    z2n = z * z / n
    centre = p + z2n / 2.0
    spread = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return max(0.0, (centre - spread) / (1.0 + z2n))


def scan_run(allowed: float, n: int, floor: int) -> int:
    """The shortest trailing run of bad samples that counts as "nearly everything is bad" in a
    window of ``n`` samples whose allowed bad share is ``allowed``; never below ``floor``."""
    if allowed <= 0.0:
        return floor
    if allowed >= 1.0:
        return n + 1  # a run can never show a share above 100 %
    needed = math.ceil(math.log(HARD_DOWN_ALPHA / max(n, 1)) / math.log(allowed))
    return max(floor, needed)


BURST_FACTOR = 3.0
"""In the last-minute test one second adds at most ``max(2, BURST_FACTOR * allowed * its
samples)`` bad samples: a burst inside a second or two stays a burst, not a trend."""


def clipped(
    allowed: float, seconds: tuple[tuple[int, ...], tuple[int, ...]], extra: int
) -> tuple[int, int]:
    """(bad, samples) with each second's bad samples clipped (above); ``extra`` in-flight slow
    probes count as bad samples of their own."""
    counts, bads = seconds
    bad, samples = sum(bads), sum(counts)
    if bads and max(bads) > 2:  # rare: only then is there anything to clip
        for count, errors in zip(counts, bads, strict=True):
            if errors > 2:
                bad -= errors - min(errors, max(2, math.ceil(BURST_FACTOR * allowed * count)))
    return bad + extra, samples + extra
