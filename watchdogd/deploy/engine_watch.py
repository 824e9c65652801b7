"""Whether green's failures during a bake are the Docker engine's: while the engine is away,
and for ``RESTART_GRACE`` after it answers again (the containers it restarts need a moment to
serve), a bake judges nobody, as the controller does for every target (``watch.presence``).
The soak found a good release switched back and quarantined because the engine restarted
during its bake (benchmarks/soak.py).

Asked at a breach, then at every tick until the grace is over, at most once a second: each
answer is an ``inspect`` of green's container.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog

from watchdogd.errors import TargetError
from watchdogd.watch.presence import RESTART_GRACE

log = structlog.get_logger(__name__)

ASK_EVERY = 1.0


class EngineOutage:
    def __init__(
        self,
        probe: Callable[[], Awaitable[object]],
        *,
        grace: float = RESTART_GRACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe  # raises TargetError while the engine does not answer
        self.grace = grace
        self._clock = clock  # read after the probe, which may wait for the engine
        self.away = False
        self.back_at: float | None = None
        self._asked_at = float("-inf")
        self._holds = False

    @property
    def watching(self) -> bool:
        """An outage was seen and its grace is not over yet."""
        return self.away or self.back_at is not None

    async def holds(self, now: float) -> bool:
        """Whether green is not to be judged now: the engine is away or just came back."""
        if now - self._asked_at < ASK_EVERY:
            return self._holds
        self._asked_at = now
        try:
            await self._probe()
        except TargetError as err:
            if not self.away:
                log.warning("deploy_engine_away_not_judged", error=str(err))
            self.away, self.back_at = True, None
        else:
            if self.away:
                self.away, self.back_at = False, self._clock()
            if self.back_at is not None and now - self.back_at >= self.grace:
                log.info("deploy_engine_back_judging_again")
                self.back_at = None
        self._holds = self.watching
        return self._holds
