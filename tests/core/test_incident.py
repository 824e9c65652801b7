"""The per-target state machine: its table, its refusals and its stories."""

from __future__ import annotations

import itertools

import pytest

from watchdogd.core.incident import (
    TRANSITIONS,
    Event,
    TargetState,
    TargetStateMachine,
    Transition,
)
from watchdogd.errors import IllegalTransition

S = TargetState
E = Event

# Written out independently of the module, so a change to the table has to change this too.
EXPECTED = {
    (S.BAKING, E.NEW_RELEASE, S.BAKING),
    (S.BAKING, E.BAKE_PASSED, S.HEALTHY),
    (S.BAKING, E.BREACH, S.BREACHED),
    (S.BAKING, E.FREEZE, S.FROZEN),
    (S.HEALTHY, E.NEW_RELEASE, S.BAKING),
    (S.HEALTHY, E.BREACH, S.BREACHED),
    (S.HEALTHY, E.FREEZE, S.FROZEN),
    (S.BREACHED, E.NEW_RELEASE, S.BAKING),
    (S.BREACHED, E.BREACH_CLEARED, S.HEALTHY),
    (S.BREACHED, E.ROLLBACK_STARTED, S.ROLLING_BACK),
    (S.BREACHED, E.FREEZE, S.FROZEN),
    (S.ROLLING_BACK, E.ROLLBACK_SUCCEEDED, S.ROLLED_BACK),
    (S.ROLLING_BACK, E.ROLLBACK_FAILED, S.FAILED),
    (S.ROLLED_BACK, E.NEW_RELEASE, S.BAKING),
    (S.ROLLED_BACK, E.BREACH, S.BREACHED),
    (S.ROLLED_BACK, E.SETTLED, S.HEALTHY),
    (S.ROLLED_BACK, E.FREEZE, S.FROZEN),
    (S.FAILED, E.NEW_RELEASE, S.FAILED),
    (S.FAILED, E.FREEZE, S.FROZEN),
    (S.FAILED, E.UNFREEZE, S.BAKING),
    (S.FROZEN, E.NEW_RELEASE, S.FROZEN),
    (S.FROZEN, E.FREEZE, S.FROZEN),
    (S.FROZEN, E.UNFREEZE, S.BAKING),
}

ILLEGAL = sorted(
    set(itertools.product(TargetState, Event)) - {(before, event) for before, event, _ in EXPECTED}
)


def walk(*events: Event, start: TargetState = S.BAKING) -> list[TargetState]:
    """Feed events one second apart and return the states visited after each."""
    machine = TargetStateMachine(start)
    return [machine.handle(event, float(t)).after for t, event in enumerate(events, start=1)]


class TestTable:
    def test_table_is_as_documented(self) -> None:
        """The module's table holds exactly the documented transitions."""
        assert {(b, e, a) for (b, e), a in TRANSITIONS.items()} == EXPECTED

    def test_table_is_read_only(self) -> None:
        """Nobody can patch the table at runtime."""
        with pytest.raises(TypeError):
            TRANSITIONS[S.FAILED, E.SETTLED] = S.HEALTHY  # type: ignore[index]

    @pytest.mark.parametrize(("before", "event", "after"), sorted(EXPECTED))
    def test_legal(self, before: TargetState, event: Event, after: TargetState) -> None:
        """Each legal event moves the machine and returns the transition."""
        machine = TargetStateMachine(before, since=1.0)
        assert machine.can(event)
        assert machine.handle(event, 5.0) == Transition(before, event, after, 5.0)
        assert machine.state is after

    @pytest.mark.parametrize(("before", "event"), ILLEGAL)
    def test_illegal(self, before: TargetState, event: Event) -> None:
        """Every other event raises IllegalTransition and leaves the machine alone."""
        machine = TargetStateMachine(before, since=1.0)
        assert not machine.can(event)
        with pytest.raises(IllegalTransition) as caught:
            machine.handle(event, 5.0)
        assert (caught.value.state, caught.value.event) == (before, event)
        assert (machine.state, machine.since) == (before, 1.0)

    def test_illegal_message(self) -> None:
        """The error says which event arrived in which state."""
        with pytest.raises(
            IllegalTransition, match="'freeze' is not allowed in state 'rolling_back'"
        ):
            TargetStateMachine(S.ROLLING_BACK).handle(E.FREEZE, 0.0)

    def test_rolling_back_cannot_be_interrupted(self) -> None:
        """A rollback in flight refuses new releases, freezes and breaches."""
        machine = TargetStateMachine(S.ROLLING_BACK)
        assert [machine.can(e) for e in (E.NEW_RELEASE, E.FREEZE, E.BREACH)] == [False] * 3


class TestStories:
    def test_happy_path(self) -> None:
        """Bake, breach, roll back, settle, and bake the next release."""
        assert walk(
            E.BAKE_PASSED,
            E.BREACH,
            E.ROLLBACK_STARTED,
            E.ROLLBACK_SUCCEEDED,
            E.SETTLED,
            E.NEW_RELEASE,
            E.BAKE_PASSED,
        ) == [S.HEALTHY, S.BREACHED, S.ROLLING_BACK, S.ROLLED_BACK, S.HEALTHY, S.BAKING, S.HEALTHY]

    def test_bad_release_caught_while_baking(self) -> None:
        """A release that breaches during its bake is rolled back."""
        assert walk(E.BREACH, E.ROLLBACK_STARTED, E.ROLLBACK_SUCCEEDED, E.SETTLED) == [
            S.BREACHED,
            S.ROLLING_BACK,
            S.ROLLED_BACK,
            S.HEALTHY,
        ]

    def test_failed_path(self) -> None:
        """A failed rollback stays failed until frozen and unfrozen by an operator."""
        assert walk(
            E.BREACH,
            E.ROLLBACK_STARTED,
            E.ROLLBACK_FAILED,
            E.NEW_RELEASE,
            E.FREEZE,
            E.NEW_RELEASE,
            E.UNFREEZE,
            E.BAKE_PASSED,
        ) == [
            S.BREACHED,
            S.ROLLING_BACK,
            S.FAILED,
            S.FAILED,
            S.FROZEN,
            S.FROZEN,
            S.BAKING,
            S.HEALTHY,
        ]

    def test_dry_run_breach_clears(self) -> None:
        """In dry-run a breach that recovers returns to healthy without a rollback."""
        assert walk(E.BAKE_PASSED, E.BREACH, E.BREACH_CLEARED) == [
            S.HEALTHY,
            S.BREACHED,
            S.HEALTHY,
        ]

    def test_fix_deployed_mid_incident(self) -> None:
        """A release deployed by hand while breached starts a new bake."""
        assert walk(E.BAKE_PASSED, E.BREACH, E.NEW_RELEASE) == [S.HEALTHY, S.BREACHED, S.BAKING]


class TestSince:
    def test_since_follows_state_changes(self) -> None:
        """since is the time the current state was entered."""
        machine = TargetStateMachine(S.BAKING, since=0.0)
        machine.handle(E.BAKE_PASSED, 300.0)
        assert (machine.state, machine.since) == (S.HEALTHY, 300.0)

    def test_new_release_restarts_bake(self) -> None:
        """A newer release while baking restarts the bake clock."""
        machine = TargetStateMachine(S.BAKING, since=0.0)
        transition = machine.handle(E.NEW_RELEASE, 120.0)
        assert (transition.before, transition.after, machine.since) == (S.BAKING, S.BAKING, 120.0)

    @pytest.mark.parametrize(
        ("state", "event"),
        [(S.FROZEN, E.NEW_RELEASE), (S.FROZEN, E.FREEZE), (S.FAILED, E.NEW_RELEASE)],
    )
    def test_recorded_self_loops_keep_since(self, state: TargetState, event: Event) -> None:
        """Self-loops outside baking are recorded but do not restart the clock."""
        machine = TargetStateMachine(state, since=10.0)
        transition = machine.handle(event, 50.0)
        assert (transition.after, transition.at, machine.since) == (state, 50.0, 10.0)

    def test_default_start(self) -> None:
        """A new machine starts baking at time zero."""
        machine = TargetStateMachine()
        assert (machine.state, machine.since) == (S.BAKING, 0.0)
