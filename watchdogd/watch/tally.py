"""One check's probe counters and duration histogram, kept as plain numbers.

The recorder counts here on every sample; ``metrics.target_text`` writes them out at scrape
time. They live with the check, not in a registry, so a reload that drops a target or a check
drops its series too.
"""

from __future__ import annotations

import bisect

PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


class ProbeTally:
    """One check's ``watchdogd_probes_total`` by result and its duration histogram."""

    __slots__ = ("buckets", "duration_count", "duration_sum", "failure", "ok", "unknown")

    def __init__(self) -> None:
        self.ok = self.failure = self.unknown = 0
        self.buckets = [0] * (len(PROBE_BUCKETS) + 1)  # per bucket, not cumulative; last: +Inf
        self.duration_count = 0
        self.duration_sum = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le = "<=").
        self.buckets[bisect.bisect_left(PROBE_BUCKETS, seconds)] += 1
        self.duration_count += 1
        self.duration_sum += seconds
