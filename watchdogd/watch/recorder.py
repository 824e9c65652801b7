"""One check's recorder: the :class:`SampleSink` a source reports to.

It feeds the check's window, counts probes for ``/metrics`` and remembers whether the source can
see its target at all. It logs when that changes, never per sample.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from watchdogd.config.schema import TargetConfig
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

    def __init__(
        self,
        target: str,
        check: str,
        check_type: str,
        window_span: float,
        *,
        thresholds: Iterable[float] = (),
    ) -> None:
        self.target = target
        self.check = check
        self.check_type = check_type
        #: The latency thresholds of this check's gates: the window counts samples above each.
        self.thresholds = tuple(sorted(set(thresholds)))
        self.window = Window(span=window_span, thresholds=self.thresholds)
        #: Probes sent and not yet answered: token -> start time (``probe_started``).
        self.in_flight: dict[int, float] = {}
        self._tokens = itertools.count()
        #: Called when a sample may breach a gate (a failure, a latency above a threshold, a
        #: probe still waiting past one): the controller evaluates then, not at its next tick,
        #: so a verdict does not depend on the tick's phase.
        self.on_evidence: Callable[[], None] | None = None
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

    def probe_started(self, now: float) -> int:
        """A probe was sent at ``now``; returns the token its :meth:`probe` passes back. While
        it waits past a latency threshold it counts as "at least that slow" (``Window.stats``)."""
        token = next(self._tokens)
        self.in_flight[token] = now
        if self.on_evidence is not None and self.thresholds:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass  # fed from outside an event loop (the simulation): it evaluates itself
            else:
                for threshold in self.thresholds:
                    loop.call_at(loop.time() + threshold + 1e-3, self._waiting, token)
        return token

    def _waiting(self, token: int) -> None:
        if token in self.in_flight and self.on_evidence is not None:
            self._version += 1
            self.on_evidence()

    def probe(
        self,
        now: float,
        ok: bool,
        latency: float | None,
        detail: str = "",
        token: int | None = None,
    ) -> None:
        self._up(now)
        if token is not None:
            self.in_flight.pop(token, None)
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
        slow = latency is not None and self.thresholds and latency > self.thresholds[0]
        if (slow or not ok) and self.on_evidence is not None:
            self.on_evidence()

    def counts(self, now: float, requests: int, errors: int) -> None:
        self._up(now)
        self.window.add_counts(now, requests, errors)
        self._version += 1
        self.samples_since_reset += 1
        self._recent.append((now, None))
        self.tally.ok += 1
        if errors and self.on_evidence is not None:
            self.on_evidence()

    def latency(self, now: float, seconds: float, count: int = 1, *, above: bool = False) -> None:
        self._up(now)
        self.window.add_latency(now, seconds, count, above=above)
        self._version += 1

    def value(self, now: float, value: float) -> None:
        self._up(now)
        self.window.add_value(now, value)
        self._version += 1
        self.samples_since_reset += 1
        self._recent.append((now, None))
        self.tally.ok += 1

    def unknown(self, now: float, reason: str, token: int | None = None) -> None:
        if token is not None:
            self.in_flight.pop(token, None)
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
        self.window = Window(
            span=span if span is not None else self.window.span, thresholds=self.thresholds
        )
        self.in_flight.clear()
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
        if self.in_flight and self.thresholds:
            # Waiting probes change the stats with ``now`` itself: no caching then.
            return self.window.stats(now, tuple(self.in_flight.values()))
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


def recorders_for(
    config: TargetConfig,
    span: float,
    keep: Mapping[str, CheckRecorder],
    on_evidence: Callable[[], None],
) -> dict[str, CheckRecorder]:
    """A recorder per check of ``config``: one of ``keep`` where its check did not change and
    its latency thresholds are the same (a window counts samples above its gates'
    thresholds: new ones, new window), else a new one. Each prompts ``on_evidence``."""
    recorders: dict[str, CheckRecorder] = {}
    for check in config.checks:
        thresholds = config.latency_thresholds(check.name)
        kept = keep.get(check.name)
        if kept is None or kept.thresholds != thresholds:
            kept = CheckRecorder(config.name, check.name, check.type, span, thresholds=thresholds)
        kept.on_evidence = on_evidence
        recorders[check.name] = kept
    return recorders
