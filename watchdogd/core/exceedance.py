"""Exact counts of latencies above fixed thresholds, per window bucket.

A latency gate asks "what share of requests is slower than ``above``?" (see ``gates``). The
window's log-spaced histogram is accurate to about 1 %, which is fine for showing a p95 but
not for counting samples against a threshold that sits on a histogram bucket boundary, such as
an app's ``le="2.0"`` for ``above: 2s``. So each window also counts, for every threshold a
gate of its check uses, the samples known to be above it:

* an exact latency ``x`` (a probe, a request) is above ``t`` when ``x > t``;
* a scraped observation known only to be *above* ``lower`` (its histogram bucket is
  ``(lower, upper]``) is above ``t`` when ``lower >= t``. Inside a bucket that straddles ``t``
  it is counted as not slow: the bound that cannot cause a false breach.

It also keeps, per threshold, the trailing run of slow samples in the order they were *sent*
(a sample's start is ``now - latency``; exact latencies only: the order of a scrape's
observations is unknown), for the fast path of a release where nearly every request is slow. A
slow answer that started before the newest fast one does not extend the run, and neither does
a waiting probe sent before it: overlapping probes of a heavy-tailed service must not stack
into a run. No I/O, no clock: the window passes ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Exceedances", "SlowSummary"]


@dataclass(frozen=True, slots=True)
class SlowSummary:
    """Per threshold: slow samples, samples, the trailing slow run and its span, and the slow
    samples of each second (oldest first). Waiting probes past a threshold are included."""

    slow: tuple[int, ...]
    seen: tuple[int, ...]
    runs: tuple[int, ...]
    spans: tuple[float, ...]
    by_second: tuple[tuple[int, ...], ...]


class Exceedances:
    """Per-bucket counts of latencies above each of ``thresholds`` (seconds)."""

    __slots__ = ("_fast_start", "_run", "_run_last", "_run_start", "_slow", "thresholds")

    def __init__(self, thresholds: Iterable[float], buckets: int) -> None:
        self.thresholds = tuple(sorted(set(thresholds)))
        self._slow = [[0] * buckets for _ in self.thresholds]
        self._run = [0] * len(self.thresholds)
        self._run_start = [0.0] * len(self.thresholds)
        self._run_last = [0.0] * len(self.thresholds)
        self._fast_start = [-math.inf] * len(self.thresholds)  # newest fast sample's start

    def add(self, slot: int, now: float, latency: float, count: int, latest: bool) -> None:
        """``count`` exact latencies; ``latest`` when they are the newest samples so far."""
        start = now - latency
        for i, threshold in enumerate(self.thresholds):
            if latency > threshold:
                self._slow[i][slot] += count
                if latest and start > self._fast_start[i]:
                    if not self._run[i]:
                        self._run_start[i] = now
                    self._run[i] += count
                    self._run_last[i] = now
            elif latest:
                self._run[i] = 0
                self._fast_start[i] = max(self._fast_start[i], start)

    def add_above(self, slot: int, lower: float, count: int) -> None:
        """``count`` observations known only to be above ``lower`` (a histogram bucket)."""
        for i, threshold in enumerate(self.thresholds):
            if lower >= threshold:
                self._slow[i][slot] += count

    def clear(self, slot: int) -> None:
        for column in self._slow:
            column[slot] = 0

    def clear_all(self) -> None:
        for column in self._slow:
            for slot in range(len(column)):
                column[slot] = 0
        self._run = [0] * len(self.thresholds)
        self._fast_start = [-math.inf] * len(self.thresholds)

    def slow(self, i: int) -> int:
        """Slow samples over every live bucket."""
        return sum(self._slow[i])

    def rotated(self, i: int, oldest: int) -> tuple[int, ...]:
        """Slow samples per bucket, oldest first (the ring turned to start at ``oldest``)."""
        column = self._slow[i]
        return tuple(column[oldest:] + column[:oldest])

    def run(self, i: int, live_since: float) -> tuple[int, float, float]:
        """(length, first, newest) of the trailing slow run; empty when it left the window."""
        if not self._run[i] or self._run_last[i] < live_since:
            return 0, 0.0, 0.0
        return self._run[i], self._run_start[i], self._run_last[i]

    def summary(
        self,
        now: float,
        in_flight: Sequence[float],
        latencies: int,
        live_since: float,
        oldest_slot: int,
    ) -> SlowSummary:
        """The counts at ``now``; ``in_flight`` holds start times of probes still waiting, each
        a slow sample of every threshold it has passed, at the moment it passed it."""
        slow, seen, runs, spans = [], [], [], []
        for i, threshold in enumerate(self.thresholds):
            crossed = sorted(
                start + threshold
                for start in in_flight
                if now - start > threshold and start > self._fast_start[i]
            )
            waiting_any = sum(1 for start in in_flight if now - start > threshold)
            waiting = len(crossed)
            slow.append(self.slow(i) + waiting_any)
            seen.append(latencies + waiting_any)
            run, first, newest = self.run(i, live_since)
            if waiting:
                first = first if run else crossed[0]
                newest = max(newest, crossed[-1])
            runs.append(run + waiting)
            spans.append(newest - first if run + waiting else 0.0)
        return SlowSummary(
            tuple(slow),
            tuple(seen),
            tuple(runs),
            tuple(spans),
            tuple(self.rotated(i, oldest_slot) for i in range(len(self.thresholds))),
        )
