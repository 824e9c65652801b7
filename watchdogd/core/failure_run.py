"""The trailing run of failed samples: what tells an outage from a burst, and a hang.

Hard down (``gates``, rule 4) reads a run of failures at the end of a window: how many, when
the first and the newest happened (a burst inside one second is not an outage), when the
first failed probe was sent, and whether any of them was an answer. A hang answers nothing:
its failures are timeouts past the check's smallest latency threshold, and probes sent after
the newest successful answer are still waiting. No I/O, no clock: the window passes ``now``.
"""

from __future__ import annotations

import math

__all__ = ["FailureRun"]


class FailureRun:
    """The trailing run of failures, in the order outcomes arrived."""

    __slots__ = ("answered_at", "count", "first", "last", "sent", "silent")

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0  # when its first and newest failure happened
        self.last = 0.0
        self.sent = 0.0  # when its first failed probe was sent (now - latency)
        self.silent = False  # no failure of the run was an answer (a hang)
        self.answered_at = -math.inf  # the newest successful answer, in any order

    def fail(self, now: float, latency: float | None, count: int, first_threshold: float) -> None:
        """``count`` failures at ``now``. Silent: no answer within ``first_threshold`` (a
        timeout), or a refused connection (no latency)."""
        silent = latency is None or latency > first_threshold
        if not self.count:
            self.first = now
            self.sent = now - latency if latency is not None else now
            self.silent = silent
        elif not silent:
            self.silent = False
        self.count += count
        self.last = now

    def fail_counted(self, now: float, failed: int) -> None:
        """Errors counted by the app (a scrape): answers, never silent."""
        if not self.count:
            self.first = now
            self.sent = now
        self.silent = False
        self.count += failed
        self.last = now

    def answered(self, now: float) -> None:
        """A successful answer arrived at ``now`` (possibly late: it still counts as one)."""
        if now > self.answered_at:  # noqa: PLR1730  cheaper than max() per request
            self.answered_at = now
