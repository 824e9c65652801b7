"""Whether the driver can say what runs, and whether anything runs at all.

These are the states in which a target's failures belong to no release: the Docker engine
is away (it took the app with it, and no rollback could be done) or has just come back (the
containers it restarts need a moment to serve again: ``RESTART_GRACE``); somebody started the
release's container again (``docker restart``, ``docker stop`` then ``start``), which gets the
same grace; somebody stopped or paused it (``docker stop``, ``docker kill``, ``docker pause``:
until it runs again, as Docker's restart policies leave it alone too); or the target has no
container (a deploy between its ``rm -f`` and its ``run``). A start by the restart policy
after a crash is not somebody's, nor is a crash a stop: the release failed. The controller
asks this object before blaming a release; the policy (``core.policy``) decides what the
answers mean.
"""

from __future__ import annotations

import structlog

from watchdogd.model import Starts

log = structlog.get_logger(__name__)

#: After an engine outage, or a start of the release's container by somebody, how long the
#: containers have to serve again before their failures count: the soak saw a good release
#: refuse connections for 2.5 s after the engine answered again, and roll back
#: (benchmarks/soak.py, seed 16). The windows start afresh at both ends of it, so nothing the
#: restart cost is held against the release afterwards.
RESTART_GRACE = 10.0


class TargetPresence:
    """What the last look at the target found; each method says whether the windows must
    start afresh (the evidence before the change belongs to another situation)."""

    def __init__(self, target: str, restart_grace: float = RESTART_GRACE) -> None:
        self.target = target
        self.restart_grace = restart_grace
        self.unreachable_since: float | None = None
        self.back_since: float | None = None
        self.absent_since: float | None = None
        self.starts: Starts | None = None
        self.held: frozenset[str] = frozenset()  # container ids stopped or paused by somebody

    @property
    def unreachable(self) -> bool:
        return self.unreachable_since is not None

    def absent_within(self, now: float, grace: float) -> bool:
        """Inside the grace after the container disappeared."""
        return self.absent_since is not None and now - self.absent_since < grace

    def engine_outage(self, now: float) -> bool:
        """The engine is away, or it or somebody restarted the release's containers less than
        ``restart_grace`` ago."""
        restarting = self.back_since is not None and now - self.back_since < self.restart_grace
        return self.unreachable or restarting

    def holds(self, now: float) -> bool:
        """The release is not judged now: the engine is away, it or somebody restarted the
        release less than ``restart_grace`` ago, or somebody stopped or paused it."""
        return self.engine_outage(now) or bool(self.held)

    def blames_nobody(self, now: float, grace: float) -> bool:
        """Failures now belong to no release: the release is not judged (``holds``) or
        nothing runs."""
        return self.holds(now) or self.absent_within(now, grace)

    def cannot_see(self, now: float, error: str) -> bool:
        """The driver failed: the engine is away. True when that starts now."""
        log.debug("target_inspect_failed", target=self.target, error=error)
        if self.unreachable_since is not None:
            return False
        log.warning("target_unreachable_not_judged", target=self.target, error=error)
        self.unreachable_since = now
        return True

    def sees(self, now: float) -> bool:
        """The driver answered. True when that ends an outage, or the grace after one."""
        if self.unreachable_since is not None:
            log.info("target_reachable_again", target=self.target)
            self.unreachable_since, self.back_since = None, now
            return True
        if self.back_since is not None and not self.engine_outage(now):
            self.back_since = None
            return True
        return False

    def started_again(self, now: float, starts: Starts | None) -> bool:
        """The starts of the release's containers as the driver's last look found them. True
        when that begins a grace: one of them was started again by somebody since the starts
        changed last (:meth:`Starts.started_again_since`). The comparison is with the look
        that saw the previous starts, not with the last look: the engine raises the restart
        count while the container waits out its restart delay, and starts it only then, so
        a look may fall between the two."""
        before = self.starts
        if starts is None or before is None or starts.started != before.started:
            self.starts = starts
        if before is None or starts is None or not starts.started_again_since(before):
            return False
        log.info("target_started_again", target=self.target, grace=self.restart_grace)
        self.back_since = now
        return True

    def held_by_somebody(self, starts: Starts | None) -> bool:
        """The containers somebody holds, as the driver's last look found them. True when a
        hold begins (one more container stopped or paused by somebody)."""
        held = starts.held if starts is not None else frozenset()
        began = bool(held - self.held)
        if held != self.held:
            log.info("target_held_by_somebody", target=self.target, containers=len(held))
        self.held = held
        return began

    def record_starts(self, starts: Starts | None) -> None:
        """A playbook (``None``) or a new release changed the containers on purpose: keep
        their starts as the new reference, with no grace, and whatever of them somebody
        holds."""
        self.starts = starts
        self.held = starts.held if starts is not None else frozenset()

    def nothing_runs(self, now: float) -> bool:
        """No container. True when that starts now."""
        if self.absent_since is not None:
            return False
        self.absent_since = now
        return True

    def something_runs(self) -> None:
        self.absent_since = None
