"""Poller plumbing shared by the sources: a jittered fixed-rate schedule and a change logger.

Scheduling rules this module keeps:

1. The first run of a check happens at a random offset in ``[0, interval)``, so a thousand
   checks with the same interval spread evenly over it instead of firing in the same
   millisecond (and the offsets differ between daemon restarts, so no two hosts sync up).
2. Then the schedule is fixed-rate: run ``k`` is due at ``start + k * interval``, whatever the
   work took. ``sleep(interval)`` after the work would drift by the work's duration every
   round, and a thousand drifting checks slowly bunch up.
3. Runs of one check overlap at most ``overlap`` at a time (1 for sources whose runs must be
   in order, such as a scrape's counter deltas). A slow run then does not delay the next one,
   so a release that answers in 3 s is still probed every second; when ``overlap`` runs are
   still going, the tick is skipped, not replayed later in a burst.

``run_every`` hands the work its *due* time, so a caller can measure its own scheduling jitter
(``clock() - due``); the benchmark does exactly that.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import structlog

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class FixedRateSchedule:
    """When the runs of one check are due, on the clock ``clock`` (``time.monotonic``)."""

    def __init__(
        self,
        interval: float,
        *,
        now: float,
        offset: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.interval = interval
        if offset is None:
            # random() is in [0, 1), so the offset is in [0, interval) as promised.
            offset = (rng or random).random() * interval  # jitter, not crypto
        self.due = now + offset

    def advance(self, now: float) -> int:
        """Move to the next due time after a run that ended at ``now``; returns how many ticks
        were skipped because the run overran them."""
        self.due += self.interval
        if self.due > now:
            return 0
        skipped = math.floor((now - self.due) / self.interval) + 1
        self.due += skipped * self.interval
        return skipped


async def run_every(
    interval: float,
    work: Callable[[float], Awaitable[None]],
    *,
    name: str,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    offset: float | None = None,
    rng: random.Random | None = None,
    overlap: int = 1,
) -> NoReturn:
    """Call ``await work(due)`` on a jittered fixed-rate schedule until cancelled, with at most
    ``overlap`` calls running at a time (module docstring).

    An exception escaping ``work`` is a bug in a source, not a property of the target: it is
    logged (once, until a run succeeds again) and the schedule goes on, so one broken check
    cannot silence itself for the rest of the daemon's life.
    """
    schedule = FixedRateSchedule(interval, now=clock(), offset=offset, rng=rng)
    crashes = StateChangeLog("source_crashed", "source_works_again", check=name)
    running: set[asyncio.Task[None]] = set()
    try:
        while True:
            delay = schedule.due - clock()
            if delay > 0:
                await sleep(delay)
            if overlap <= 1:
                await _guarded(work, schedule.due, crashes)
            else:
                running = {task for task in running if not task.done()}
                if len(running) < overlap:
                    running.add(
                        asyncio.create_task(
                            _guarded(work, schedule.due, crashes), name=f"run:{name}"
                        )
                    )
            schedule.advance(clock())
    finally:
        for task in running:
            task.cancel()


async def _guarded(
    work: Callable[[float], Awaitable[None]], due: float, crashes: StateChangeLog
) -> None:
    try:
        await work(due)
    except Exception as err:  # the poller must survive: see run_every
        crashes.failing(f"{type(err).__name__}: {err}", exc_info=True)
    else:
        crashes.ok()


class StateChangeLog:
    """Logs a source's trouble once when it starts and once when it ends, never per run.

    The first call of :meth:`ok` at start-up logs nothing: only a recovery is news.
    """

    def __init__(self, failing_event: str, ok_event: str, **context: Any) -> None:
        self._log = structlog.get_logger().bind(**context)
        self._failing_event = failing_event
        self._ok_event = ok_event
        self.is_failing = False

    def failing(self, reason: str, **fields: Any) -> None:
        if not self.is_failing:
            self.is_failing = True
            self._log.warning(self._failing_event, reason=reason, **fields)

    def ok(self, **fields: Any) -> None:
        if self.is_failing:
            self.is_failing = False
            self._log.info(self._ok_event, **fields)
