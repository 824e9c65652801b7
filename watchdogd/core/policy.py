"""The target's policy: given the facts at ``now``, what happens next. Pure; no I/O, no clock.

``core.incident`` says which transitions exist; this module says when the daemon takes them.
The controller (``watch.controller``) gathers the facts (gate verdicts, the running release,
the store's answers), asks here, and carries the answer out. Every answer is a plain value, so
each rule is tested with plain values and a fake clock (``tests/core/test_policy.py``):

* **tick** (once a second, :func:`on_tick`):
  - while no container exists, within ``absent_grace`` of it vanishing, nothing happens:
    between a deploy's ``rm -f`` and its ``run`` the failures belong to no release; nor
    while the release is not judged (the engine away, or somebody restarted, stopped or
    paused it);
  - ``baking``: the bake passes after ``bake_time`` when no gate breaches or waits out its
    ``for:``, and every gated check has seen the release at least once;
  - ``rolled_back``: a breach means the restored release breaches too: **freeze** (rolling
    back again would only loop); otherwise it **settles** after ``cooldown``;
  - ``breached`` without a playbook and without a breach: the breach **cleared**;
  - a breach while ``baking`` or ``healthy`` **starts** a playbook (subject to the guards).
* **a new release** (:func:`on_new_release`): the bake restarts; a known-good release that
  comes back is healthy at once; a quarantined one is rolled back at once.
* **starting** (:func:`refusal` then :func:`on_start`): the guards, ``auto_rollback``, a
  writable store and a release to restore (never a quarantined one an operator names) decide
  whether; dry run only notes the breach.
* **the end of a playbook** (:func:`on_playbook_end`): success settles into ``rolled_back``
  and quarantines the bad release (unless it is the restored image); failure freezes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watchdogd.core.gates import GateResult, Verdict
from watchdogd.core.guards import GuardPolicy
from watchdogd.core.guards import refusal as guard_refusal
from watchdogd.core.incident import Event, TargetState
from watchdogd.model import TriggerKind

#: How long a target may have no container before its failures count again (a deploy that
#: removed the old container and never started a new one is an outage, not a deploy).
ABSENT_GRACE = 30.0

STUCK = frozenset({TargetState.FROZEN, TargetState.FAILED})
AUTOMATIC_START = frozenset({TargetState.BAKING, TargetState.HEALTHY})


@dataclass(frozen=True)
class Timing:
    """A target's resolved timing settings, in seconds."""

    bake_time: float
    cooldown: float
    absent_grace: float = ABSENT_GRACE


@dataclass(frozen=True)
class TickFacts:
    """What the controller knows at a tick."""

    now: float
    state: TargetState
    results: Sequence[GateResult]
    has_evidence: bool  # every gated check has a sample of the current release
    baking_since: float
    rolled_back_at: float | None = None
    absent_since: float | None = None
    playbook_running: bool = False
    # The release is not judged now (``watch.presence``): the engine is away (the app went
    # with it, and no rollback could be done) or just restarted it, or somebody restarted,
    # stopped or paused it. Its failures belong to no release.
    not_judged: bool = False

    @property
    def breached(self) -> list[GateResult]:
        return [r for r in self.results if r.verdict is Verdict.BREACHED]


@dataclass(frozen=True)
class TickDecision:
    """What a tick does: at most one transition, and maybe a freeze or a playbook to start."""

    event: Event | None = None
    freeze: GateResult | None = None  # the restored release breaches: freeze, with this gate
    start: GateResult | None = None  # a gate breached: start a playbook for it
    waiting: bool = False  # absent-container grace or a release not judged: nothing is

    @property
    def idle(self) -> bool:
        return self.event is None and self.freeze is None and self.start is None


def warming_up(state: TargetState, now: float, baking_since: float, warmup: float) -> bool:
    """A new release's first ``warmup`` seconds: its samples are shown, but only hard down
    (failures spanning 1.5 s) and health states judge them; afterwards they are dropped."""
    return warmup > 0.0 and state is TargetState.BAKING and now - baking_since < warmup


def on_tick(facts: TickFacts, timing: Timing) -> TickDecision:
    """The decision of one evaluation tick (see the module docstring)."""
    if facts.absent_since is not None and facts.now - facts.absent_since < timing.absent_grace:
        return TickDecision(waiting=True)
    if facts.not_judged:
        return TickDecision(waiting=True)
    breached = facts.breached
    state = facts.state
    event: Event | None = None
    if state is TargetState.BAKING:
        # A gate still waiting out its `for:` has a breached condition: no bake passes then.
        pending = any(r.condition is Verdict.BREACHED for r in facts.results)
        baked = facts.now - facts.baking_since >= timing.bake_time
        if not pending and facts.has_evidence and baked:
            event = Event.BAKE_PASSED
    elif state is TargetState.ROLLED_BACK:
        if breached:
            return TickDecision(freeze=breached[0])
        settled_at = facts.rolled_back_at
        if settled_at is not None and facts.now - settled_at >= timing.cooldown:
            event = Event.SETTLED
    elif state is TargetState.BREACHED and not breached and not facts.playbook_running:
        event = Event.BREACH_CLEARED
    after = _after(state, event)
    start = breached[0] if breached and after in AUTOMATIC_START else None
    return TickDecision(event=event, start=start)


def _after(state: TargetState, event: Event | None) -> TargetState:
    # Each transition a tick takes (bake passed, settled, breach cleared) ends in healthy.
    return state if event is None else TargetState.HEALTHY


@dataclass(frozen=True)
class ReleaseDecision:
    """What a newly seen release does to the target."""

    events: tuple[Event, ...] = ()
    quarantine_rollback: bool = False  # the release is quarantined: roll it back at once


def on_new_release(state: TargetState, *, known_good: bool, quarantined: bool) -> ReleaseDecision:
    """A release other than the one seen before is running now."""
    events: list[Event] = []
    if state is not TargetState.ROLLING_BACK:
        events.append(Event.NEW_RELEASE)
    after = TargetState.BAKING if state not in STUCK and events else state
    if known_good and after is TargetState.BAKING:
        events.append(Event.BAKE_PASSED)  # a known-good release came back
        after = TargetState.HEALTHY
    return ReleaseDecision(
        events=tuple(events), quarantine_rollback=quarantined and after in AUTOMATIC_START
    )


@dataclass(frozen=True)
class StartFacts:
    """What decides whether a playbook may start."""

    kind: TriggerKind
    now: float  # wall clock: the store keeps rollback times in it
    state: TargetState
    playbook_running: bool
    rollback_times: Sequence[float]
    auto_rollback: bool
    store_writable: bool
    has_restore_target: bool
    to: str | None = None
    restore_refusal: str | None = None  # why the release ``to`` names may not be restored
    held: bool = False  # somebody stopped or paused the release (``watch.presence``)


HELD_REFUSAL = "the release was stopped or paused by somebody; it is judged when it runs"


def refusal(facts: StartFacts, guards: GuardPolicy) -> str | None:
    """Why a playbook may not start now, or ``None``: an alert about a release somebody
    stopped (it says what they did; restoring the previous release would overrule them, an
    operator's rollback still may), then the guards, the settings, the store and the release
    to restore."""
    if facts.held and facts.kind is TriggerKind.ALERT:
        return HELD_REFUSAL
    reason = guard_refusal(
        guards,
        facts.kind,
        now=facts.now,
        running=facts.playbook_running,
        frozen=facts.state in STUCK,
        rollback_times=facts.rollback_times,
    )
    if reason is None and not facts.auto_rollback and facts.kind is not TriggerKind.MANUAL:
        reason = "auto_rollback is off"
    if reason is None and not facts.store_writable:
        reason = "the state store cannot be written, so the playbook could not be journaled"
    if reason is None and not facts.has_restore_target:
        reason = (
            "no known-good release to roll back to"
            if facts.to is None
            else f"no release {facts.to!r}"
        )
    return reason or facts.restore_refusal


def on_refusal(state: TargetState, kind: TriggerKind) -> list[Event]:
    """A refused gate or alert still says the release is bad; an operator's refused request
    says nothing about its health and moves nothing (the API answers 409)."""
    return [] if kind is TriggerKind.MANUAL else note_breach(state)


def note_breach(state: TargetState) -> list[Event]:
    movable = state in (TargetState.BAKING, TargetState.HEALTHY, TargetState.ROLLED_BACK)
    return [Event.BREACH] if movable else []


def on_start(state: TargetState, *, dry_run: bool) -> list[Event]:
    """The transitions of a playbook that starts: a dry run only notes the breach."""
    return note_breach(state) + ([] if dry_run else [Event.ROLLBACK_STARTED])


@dataclass(frozen=True)
class PlaybookEnd:
    """What the end of a playbook does."""

    events: tuple[Event, ...]
    quarantine_bad: bool = False
    reset_windows: bool = False
    frozen: bool = False


def on_playbook_end(
    *, succeeded: bool, bad_image: str | None, restored_image: str | None
) -> PlaybookEnd:
    """Success: rolled back, windows start over, the bad release is quarantined unless it is
    the restored image. Failure: failed, then frozen until an operator looks."""
    if succeeded and restored_image is not None:
        return PlaybookEnd(
            events=(Event.ROLLBACK_SUCCEEDED,),
            quarantine_bad=bad_image is not None and bad_image != restored_image,
            reset_windows=True,
        )
    return PlaybookEnd(events=(Event.ROLLBACK_FAILED, Event.FREEZE), frozen=True)
