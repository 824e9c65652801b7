"""Log-spaced latency bins: the window's histogram, accurate to a relative error.

In the style of DDSketch (Masson, Rim and Lee, VLDB 2019): with ``gamma = (1 + a) / (1 - a)``,
a latency ``x`` goes into bin ``ceil(log(x) / log(gamma))``, and a bin reports
``2 * gamma**i / (gamma + 1)``, which is within relative error ``a`` of every value in the bin.
Latencies are clamped to [``MIN_LATENCY``, ``MAX_LATENCY``]; values at or below ``MIN_LATENCY``
share a zero bin that reports 0.0, which is what bounds the number of bins.

Quantiles follow the nearest-rank definition: the q-quantile of n values is the value of
1-based rank ``ceil(q * n)`` in ascending order. The reported value is within the relative
error of that exact value, and never above the exact maximum. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["MAX_LATENCY", "MIN_LATENCY", "PERCENTS", "LatencyBins"]

MIN_LATENCY = 1e-6
"""Seconds. Latencies at or below this go into the zero bin: no probe is that fast."""

MAX_LATENCY = 1e5
"""Seconds. Latencies above this are clamped, which is what bounds the number of bins."""

PERCENTS = (50, 95, 99)
"""Nearest-rank percentiles, as integer percents so that ranks are exact integer arithmetic
(0.95 * 100 is not 95 in binary floating point)."""


class LatencyBins:
    """The mapping between latencies and bin keys at one relative accuracy."""

    __slots__ = ("_gamma", "_inv_log_gamma", "max_index", "zero_index")

    def __init__(self, relative_accuracy: float) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}")
        self._gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._inv_log_gamma = 1.0 / math.log(self._gamma)
        # Every value above MIN_LATENCY maps to an index >= ceil(log(MIN_LATENCY) / log(gamma)),
        # so the zero bin sits just below that and sorts first.
        self.zero_index = math.ceil(math.log(MIN_LATENCY) * self._inv_log_gamma) - 1
        self.max_index = math.ceil(math.log(MAX_LATENCY) * self._inv_log_gamma)

    def key(self, latency: float) -> int:
        """The bin of ``latency`` (already validated and clamped to ``MAX_LATENCY``)."""
        if latency > MIN_LATENCY:
            return math.ceil(math.log(latency) * self._inv_log_gamma)
        return self.zero_index

    def value(self, key: int) -> float:
        """What bin ``key`` reports."""
        if key == self.zero_index:
            return 0.0
        return 2.0 * self._gamma**key / (self._gamma + 1.0)

    def percentiles(
        self, merged: Mapping[int, int], total: int, maximum: float
    ) -> tuple[float, float, float]:
        """The p50, p95 and p99 of the ``total`` latencies counted in ``merged``."""
        # Nearest rank: ceil(p * total / 100), computed in integers.
        ranks = [-(-p * total // 100) for p in PERCENTS]
        found: list[float] = []
        cumulative = 0
        wanted = 0  # index into ranks of the next percentile to find
        rank = ranks[0]
        for key in sorted(merged):
            cumulative += merged[key]
            while cumulative >= rank:
                found.append(min(self.value(key), maximum))
                wanted += 1
                if wanted == len(ranks):
                    return found[0], found[1], found[2]
                rank = ranks[wanted]
        raise AssertionError("merged histogram holds fewer latencies than the buckets")
