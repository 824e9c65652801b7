"""``for:`` as a share of time: how long a gate's condition has mostly held.

A gate with ``for: 10s`` breaches when its condition

* is breached now,
* has been part of one episode for at least ``for_`` seconds (an episode starts at the first
  breached evaluation and ends once a whole ``for_`` passes with no breached moment), and
* was breached for at least :data:`FOR_SHARE` of the last ``for_`` seconds (time-weighted:
  each evaluation's condition holds until the next one; ``unknown`` counts as not breached).

So a container unhealthy 9 s out of every 10 s breaches a ``for: 10s`` gate, and one that
flaps 4 s unhealthy, 4 s healthy (50 %) never does. The old rule, "continuously", was reset
by any single healthy sample. Memory is one entry per change of the condition inside ``for_``.
"""

from __future__ import annotations

from collections import deque

__all__ = ["FOR_SHARE", "Hold"]

FOR_SHARE = 0.8
"""Share of ``for_`` the condition must have been breached: enough for "unhealthy 90 % of
the time", far from a 50 % flap."""


class Hold:
    """The ``for:`` timer of one gate. No clock: every call takes ``now``."""

    def __init__(self, for_: float) -> None:
        self.for_ = for_
        self._changes: deque[tuple[float, bool]] = deque()  # (since, breached)
        self._episode: float | None = None

    def reset(self) -> None:
        self._changes.clear()
        self._episode = None

    def update(self, now: float, breached: bool) -> tuple[bool, float, float]:
        """Record the condition at ``now``; return (holds, seconds in episode, share)."""
        changes = self._changes
        if changes and now < changes[-1][0]:
            self.reset()  # a clock that went backwards: start over rather than guess
        if not changes or changes[-1][1] != breached:
            changes.append((now, breached))
        cut = now - self.for_
        while len(changes) >= 2 and changes[1][0] <= cut:
            changes.popleft()
        share = self._share(now, cut)
        if breached and self._episode is None:
            self._episode = now
        elif share == 0.0 and not breached:
            self._episode = None
        held = now - self._episode if self._episode is not None else 0.0
        holds = breached and held >= self.for_ and share >= FOR_SHARE
        return holds, held, share

    def _share(self, now: float, cut: float) -> float:
        if self.for_ <= 0.0:
            return 1.0
        breached_time = 0.0
        entries = list(self._changes)
        for i, (since, breached) in enumerate(entries):
            if not breached:
                continue
            until = entries[i + 1][0] if i + 1 < len(entries) else now
            breached_time += max(0.0, until - max(since, cut))
        return min(1.0, breached_time / self.for_)
