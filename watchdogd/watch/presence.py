"""Whether the driver can say what runs, and whether anything runs at all.

These are the two states in which a target's failures belong to no release: the Docker engine
is away (it took the app with it, and no rollback could be done), or the target has no
container (a deploy between its ``rm -f`` and its ``run``). The controller asks this object
before blaming a release; the policy (``core.policy``) decides what the answers mean.
"""

from __future__ import annotations

import structlog

log = structlog.get_logger(__name__)


class TargetPresence:
    """What the last look at the target found; each method says whether the windows must
    start afresh (the evidence before the change belongs to another situation)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.unreachable_since: float | None = None
        self.absent_since: float | None = None

    @property
    def unreachable(self) -> bool:
        return self.unreachable_since is not None

    def absent_within(self, now: float, grace: float) -> bool:
        """Inside the grace after the container disappeared."""
        return self.absent_since is not None and now - self.absent_since < grace

    def blames_nobody(self, now: float, grace: float) -> bool:
        """Failures now belong to no release: the engine is away or nothing runs."""
        return self.unreachable or self.absent_within(now, grace)

    def cannot_see(self, now: float, error: str) -> bool:
        """The driver failed: the engine is away. True when that starts now."""
        log.debug("target_inspect_failed", target=self.target, error=error)
        if self.unreachable_since is not None:
            return False
        log.warning("target_unreachable_not_judged", target=self.target, error=error)
        self.unreachable_since = now
        return True

    def sees(self) -> bool:
        """The driver answered. True when that ends an outage."""
        if self.unreachable_since is None:
            return False
        log.info("target_reachable_again", target=self.target)
        self.unreachable_since = None
        return True

    def nothing_runs(self, now: float) -> bool:
        """No container. True when that starts now."""
        if self.absent_since is not None:
            return False
        self.absent_since = now
        return True

    def something_runs(self) -> None:
        self.absent_since = None
