"""Guards: whether a playbook may start now. Pure; times are passed in.

They keep watchdogd from making things worse: one playbook per target at a time, a cooldown
after a rollback, a cap on rollbacks per hour, and no automatic action on a frozen target.
An operator's explicit request skips the cooldown and the cap, but never runs two playbooks
at once. A quarantined release coming back skips the cooldown (it is known bad), not the cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watchdogd.model import TriggerKind

HOUR = 3600.0


@dataclass(frozen=True)
class GuardPolicy:
    cooldown: float
    max_per_hour: int


def refusal(
    policy: GuardPolicy,
    trigger: TriggerKind,
    *,
    now: float,
    running: bool,
    frozen: bool,
    rollback_times: Sequence[float],
) -> str | None:
    """Why a playbook may not start now, or ``None`` when it may.

    ``rollback_times`` are the start times of earlier rollbacks of this target, in the same
    clock as ``now``.
    """
    if running:
        return "a playbook is already running for this target"
    if trigger is TriggerKind.MANUAL:
        return None
    if frozen:
        return "the target is frozen; unfreeze it first"
    recent = [t for t in rollback_times if now - t < HOUR]
    if len(recent) >= policy.max_per_hour:
        return (
            f"{len(recent)} rollbacks in the last hour "
            f"(max_rollbacks_per_hour: {policy.max_per_hour})"
        )
    if trigger is not TriggerKind.QUARANTINE and recent:
        since = now - max(recent)
        if since < policy.cooldown:
            return f"in cooldown: last rollback {since:.0f}s ago (cooldown {policy.cooldown:.0f}s)"
    return None
