"""The per-target state machine: what watchdogd believes about a target's current release.

Rules this module keeps:

1. Everything that decides a target's state lives here, and as much of it as possible lives in
   the ``TRANSITIONS`` table. The daemon reports events; this module says what they mean.
2. An event the table does not list for the current state is a bug in the caller, so it raises
   ``IllegalTransition`` rather than being ignored. Callers that merely might send an event
   ask ``can()`` first.
3. No I/O and no clock: ``handle`` takes ``now``.

States
------
``baking``        a new release is being watched through its bake time
``healthy``       the current release is known-good
``breached``      a gate breached; the playbook has not started (or, in dry-run, never will)
``rolling_back``  the playbook is running
``rolled_back``   the playbook succeeded; the restored release is settling
``failed``        the playbook failed; only an operator gets the target out of here
``frozen``        an operator (or the daemon, after ``failed``) stopped automation

Table
-----
::

    baking        --new_release-->         baking        a newer release restarts the bake
    baking        --bake_passed-->         healthy
    healthy       --new_release-->         baking
    rolled_back   --new_release-->         baking
    breached      --new_release-->         baking        a human deployed a fix mid-incident
    baking | healthy | rolled_back
                  --breach-->              breached
    breached      --breach_cleared-->      healthy       the gate recovered before a playbook
    breached      --rollback_started-->    rolling_back
    rolling_back  --rollback_succeeded-->  rolled_back
    rolling_back  --rollback_failed-->     failed
    rolled_back   --settled-->             healthy
    every state but rolling_back
                  --freeze-->              frozen        a playbook in flight must finish first
    frozen        --unfreeze-->            baking        re-bake whatever is running now
    failed        --unfreeze-->            baking
    frozen        --new_release-->         frozen        recorded; automation stays off
    failed        --new_release-->         failed        recorded; an operator must unfreeze

``unfreeze`` always goes to ``baking`` rather than back to the state before the freeze: while
frozen, anything may have been deployed by hand, so the running release earns known-good
again. Everything else, for example ``new_release`` or ``freeze`` while ``rolling_back`` or
``breach`` while ``frozen``, is illegal.

``since`` is when the target entered its state. A self-loop leaves it alone, except
``baking --new_release--> baking``, which starts a new bake and so restarts the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from watchdogd.errors import IllegalTransition

__all__ = [
    "TRANSITIONS",
    "Event",
    "IllegalTransition",
    "TargetState",
    "TargetStateMachine",
    "Transition",
]


class TargetState(StrEnum):
    BAKING = "baking"
    HEALTHY = "healthy"
    BREACHED = "breached"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    FROZEN = "frozen"


class Event(StrEnum):
    NEW_RELEASE = "new_release"
    BAKE_PASSED = "bake_passed"
    BREACH = "breach"
    BREACH_CLEARED = "breach_cleared"
    ROLLBACK_STARTED = "rollback_started"
    ROLLBACK_SUCCEEDED = "rollback_succeeded"
    ROLLBACK_FAILED = "rollback_failed"
    SETTLED = "settled"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"


_S = TargetState
_E = Event

TRANSITIONS: Mapping[tuple[TargetState, Event], TargetState] = MappingProxyType(
    {
        (_S.BAKING, _E.NEW_RELEASE): _S.BAKING,
        (_S.BAKING, _E.BAKE_PASSED): _S.HEALTHY,
        (_S.BAKING, _E.BREACH): _S.BREACHED,
        (_S.BAKING, _E.FREEZE): _S.FROZEN,
        (_S.HEALTHY, _E.NEW_RELEASE): _S.BAKING,
        (_S.HEALTHY, _E.BREACH): _S.BREACHED,
        (_S.HEALTHY, _E.FREEZE): _S.FROZEN,
        (_S.BREACHED, _E.NEW_RELEASE): _S.BAKING,
        (_S.BREACHED, _E.BREACH_CLEARED): _S.HEALTHY,
        (_S.BREACHED, _E.ROLLBACK_STARTED): _S.ROLLING_BACK,
        (_S.BREACHED, _E.FREEZE): _S.FROZEN,
        (_S.ROLLING_BACK, _E.ROLLBACK_SUCCEEDED): _S.ROLLED_BACK,
        (_S.ROLLING_BACK, _E.ROLLBACK_FAILED): _S.FAILED,
        (_S.ROLLED_BACK, _E.NEW_RELEASE): _S.BAKING,
        (_S.ROLLED_BACK, _E.BREACH): _S.BREACHED,
        (_S.ROLLED_BACK, _E.SETTLED): _S.HEALTHY,
        (_S.ROLLED_BACK, _E.FREEZE): _S.FROZEN,
        (_S.FAILED, _E.NEW_RELEASE): _S.FAILED,
        (_S.FAILED, _E.FREEZE): _S.FROZEN,
        (_S.FAILED, _E.UNFREEZE): _S.BAKING,
        (_S.FROZEN, _E.NEW_RELEASE): _S.FROZEN,
        (_S.FROZEN, _E.FREEZE): _S.FROZEN,
        (_S.FROZEN, _E.UNFREEZE): _S.BAKING,
    }
)


@dataclass(frozen=True, slots=True)
class Transition:
    """One handled event, for the journal and the audit log."""

    before: TargetState
    event: Event
    after: TargetState
    at: float


class TargetStateMachine:
    """The state of one target, moved only by :meth:`handle`."""

    __slots__ = ("since", "state")

    def __init__(self, state: TargetState = TargetState.BAKING, since: float = 0.0) -> None:
        self.state = state
        self.since = since

    def can(self, event: Event) -> bool:
        """Whether ``event`` is legal in the current state."""
        return (self.state, event) in TRANSITIONS

    def handle(self, event: Event, now: float) -> Transition:
        """Apply ``event`` at ``now``; raise :class:`IllegalTransition` if it is not legal."""
        before = self.state
        try:
            after = TRANSITIONS[before, event]
        except KeyError:
            raise IllegalTransition(before, event) from None
        if after is not before or after is TargetState.BAKING:
            self.since = now
        self.state = after
        return Transition(before=before, event=event, after=after, at=now)

    def __repr__(self) -> str:
        return f"TargetStateMachine(state={self.state.value!r}, since={self.since!r})"
