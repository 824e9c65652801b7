"""One check's recorder: the :class:`SampleSink` a source reports to.

It feeds the check's window, counts probes for ``/metrics`` and remembers whether the source can
see its target at all. It logs when that changes, never per sample.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import structlog

from watchdogd.core.window import Window, WindowStats
from watchdogd.watch.tally import ProbeTally

log = structlog.get_logger(__name__)

#: Samples kept for ``fresh``: more than any ``wait_healthy.min_samples`` that makes sense.
RECENT = 32


@dataclass
class CheckView:
    """What ``/metrics`` and the API show of a check (see ``metrics.CheckView``)."""

    check: str
    type: str
    requests: int
    error_ratio: float | None
    quantiles: dict[str, float | None]
    source_up: bool
    last_detail: str
    stats: WindowStats = field(repr=False)
    tally: ProbeTally = field(default_factory=ProbeTally, repr=False)

    def to_dict(self) -> dict[str, object]:
        s = self.stats
        return {
            "name": self.check,
            "type": self.type,
            "source_up": self.source_up,
            "requests": s.count,
            "errors": s.errors,
            "error_ratio": s.error_ratio,
            "latency_seconds": {
                "p50": s.p50,
                "p95": s.p95,
                "p99": s.p99,
                "mean": s.mean,
                "max": s.max,
            },
            "consecutive_failures": s.consecutive_failures,
            "last_ok": s.last_ok,
            "last_value": s.last_value,
            "last_detail": self.last_detail,
        }


class CheckRecorder:
    """Implements ``sources.base.SampleSink`` for one (target, check)."""

    def __init__(self, target: str, check: str, check_type: str, window_span: float) -> None:
        self.target = target
        self.check = check
        self.check_type = check_type
        self.window = Window(span=window_span)
        self.source_up = True
        self.last_detail = ""
        self.samples_since_reset = 0
        self.successes_since_reset = 0
        # (time, ok) of the newest samples, ok None for counts and values: what ``fresh``
        # reads, so wait_healthy judges only samples taken after the restore.
        self._recent: deque[tuple[float, bool | None]] = deque(maxlen=RECENT)
        # watchdogd_probes_total and watchdogd_probe_duration_seconds of this check: plain
        # numbers, written out at scrape time (metrics.target_text says why not
        # prometheus_client).
        self.tally = ProbeTally()
        # The last stats() and what it depended on: the window's bucket and its contents.
        self._version = 0
        self._cached: tuple[int, int, WindowStats] | None = None

    # --- SampleSink ------------------------------------------------------------------------

    def probe(self, now: float, ok: bool, latency: float | None, detail: str = "") -> None:
        self._up(now)
        self.window.add(now, ok, latency)
        self._version += 1
        self.samples_since_reset += 1
        self._recent.append((now, ok))
        if ok:
            self.successes_since_reset += 1
            self.tally.ok += 1
        else:
            self.tally.failure += 1
        if latency is not None:
            self.tally.observe(latency)
        self.last_detail = detail

    def counts(self, now: float, requests: int, errors: int) -> None:
        self._up(now)
        self.window.add_counts(now, requests, errors)
        self._version += 1
        self.samples_since_reset += 1
        self._recent.append((now, None))
        self.tally.ok += 1

    def latency(self, now: float, seconds: float, count: int = 1) -> None:
        self._up(now)
        self.window.add_latency(now, seconds, count)
        self._version += 1

    def value(self, now: float, value: float) -> None:
        self._up(now)
        self.window.add_value(now, value)
        self._version += 1
        self.samples_since_reset += 1
        self._recent.append((now, None))
        self.tally.ok += 1

    def unknown(self, now: float, reason: str) -> None:
        self.tally.unknown += 1
        self.last_detail = reason
        if self.source_up:
            self.source_up = False
            log.warning("source_down", target=self.target, check=self.check, reason=reason)

    # --- for the controller ----------------------------------------------------------------

    def _up(self, now: float) -> None:
        if not self.source_up:
            self.source_up = True
            log.info("source_up", target=self.target, check=self.check)

    def reset(self, span: float | None = None) -> None:
        """Forget every sample: they belong to a release that no longer runs."""
        self.window = Window(span=span if span is not None else self.window.span)
        self._version += 1
        self.samples_since_reset = 0
        self.successes_since_reset = 0

    def fresh(self, since: float) -> tuple[int, bool | None]:
        """How many samples were taken at or after ``since`` (up to ``RECENT``), and whether
        the newest of them was ok (None: none, or a count or value with no verdict)."""
        count, newest = 0, None
        for at, ok in reversed(self._recent):
            if at < since:
                break
            if count == 0:
                newest = ok
            count += 1
        return count, newest

    def stats(self, now: float) -> WindowStats:
        """``window.stats(now)``, computed once per second and sample: the tick's gates, the
        API and ``/metrics`` all read it, and at 1000 targets each computation counts. The
        window's stats depend on ``now`` only through its one-second bucket."""
        bucket = math.floor(now)
        cached = self._cached
        if cached is not None and cached[0] == bucket and cached[1] == self._version:
            return cached[2]
        stats = self.window.stats(now)
        self._cached = (bucket, self._version, stats)
        return stats

    def view(self, now: float, *, recent: bool = False) -> CheckView:
        """The check at ``now``; with ``recent``, the stats the last evaluation tick computed
        may stand in, up to a second old (``/metrics`` at 1000 targets: 60 ms less)."""
        cached = self._cached
        if recent and cached is not None and cached[0] >= math.floor(now) - 1:
            stats = cached[2]
        else:
            stats = self.stats(now)
        return CheckView(
            check=self.check,
            type=self.check_type,
            requests=stats.count,
            error_ratio=stats.error_ratio,
            quantiles={"0.5": stats.p50, "0.95": stats.p95, "0.99": stats.p99},
            source_up=self.source_up,
            last_detail=self.last_detail,
            stats=stats,
            tally=self.tally,
        )
