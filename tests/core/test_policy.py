"""The target's policy with plain values: what a tick, a new release, a start request and the
end of a playbook decide. Times are plain numbers (a fake clock): no daemon, no store."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from watchdogd.core import policy
from watchdogd.core.gates import GateResult, Verdict
from watchdogd.core.guards import GuardPolicy
from watchdogd.core.incident import Event, TargetState, TargetStateMachine
from watchdogd.model import TriggerKind

TIMING = policy.Timing(bake_time=60.0, cooldown=300.0)
GUARDS = GuardPolicy(cooldown=300.0, max_per_hour=3)
S = TargetState


def result(verdict: Verdict = Verdict.OK, condition: Verdict | None = None) -> GateResult:
    return GateResult(
        gate="api:error_rate",
        verdict=verdict,
        condition=condition or verdict,
        value=0.5 if verdict is Verdict.BREACHED else 0.0,
        threshold=0.01,
        reason="error rate 50 % > 1 %",
        samples=40,
    )


BREACH = result(Verdict.BREACHED)
OK = result()


def tick(
    state: TargetState,
    now: float,
    results: Sequence[GateResult] = (OK,),
    **facts: object,
) -> policy.TickDecision:
    defaults: dict[str, object] = {"has_evidence": True, "baking_since": 0.0}
    return policy.on_tick(
        policy.TickFacts(now=now, state=state, results=results, **(defaults | facts)),  # type: ignore[arg-type]
        TIMING,
    )


def start(state: TargetState, kind: TriggerKind = TriggerKind.GATE, **facts: object) -> str | None:
    defaults: dict[str, object] = {
        "now": 10_000.0,
        "playbook_running": False,
        "rollback_times": [],
        "auto_rollback": True,
        "store_writable": True,
        "has_restore_target": True,
    }
    return policy.refusal(
        policy.StartFacts(kind=kind, state=state, **(defaults | facts)),  # type: ignore[arg-type]
        GUARDS,
    )


class TestBake:
    def test_passes_after_bake_time_with_evidence(self) -> None:
        assert tick(S.BAKING, 59.0).idle
        assert tick(S.BAKING, 60.0).event is Event.BAKE_PASSED

    def test_needs_a_sample_of_the_release(self) -> None:
        """bake_time alone never blesses a release nobody has seen answer."""
        assert tick(S.BAKING, 600.0, has_evidence=False).idle

    def test_a_gate_waiting_out_its_for_holds_the_bake(self) -> None:
        waiting = result(Verdict.OK, condition=Verdict.BREACHED)
        assert tick(S.BAKING, 600.0, [waiting]).idle

    def test_a_breach_while_baking_starts_a_playbook(self) -> None:
        decision = tick(S.BAKING, 10.0, [BREACH])
        assert decision.event is None
        assert decision.start == BREACH


class TestRolledBack:
    def test_settles_after_the_cooldown(self) -> None:
        assert tick(S.ROLLED_BACK, 1299.0, rolled_back_at=1000.0).idle
        assert tick(S.ROLLED_BACK, 1300.0, rolled_back_at=1000.0).event is Event.SETTLED

    def test_the_restored_release_breaching_freezes(self) -> None:
        """Rolling back again would only loop: freeze, start nothing."""
        decision = tick(S.ROLLED_BACK, 1001.0, [BREACH], rolled_back_at=1000.0)
        assert decision.freeze == BREACH
        assert decision.start is None
        assert decision.event is None


class TestBreached:
    def test_clears_when_no_gate_breaches_and_no_playbook_runs(self) -> None:
        assert tick(S.BREACHED, 5.0).event is Event.BREACH_CLEARED
        assert tick(S.BREACHED, 5.0, playbook_running=True).idle

    def test_a_held_breach_starts_nothing_again(self) -> None:
        assert tick(S.BREACHED, 5.0, [BREACH]).idle

    @pytest.mark.parametrize("state", [S.FROZEN, S.FAILED, S.ROLLING_BACK])
    def test_nothing_automatic_in_other_states(self, state: TargetState) -> None:
        assert tick(state, 5.0, [BREACH]).idle


class TestAbsentContainer:
    def test_failures_within_the_grace_are_not_judged(self) -> None:
        decision = tick(S.HEALTHY, 100.0 + policy.ABSENT_GRACE - 1, [BREACH], absent_since=100.0)
        assert decision.waiting
        assert decision.idle

    def test_after_the_grace_a_breach_counts_again(self) -> None:
        decision = tick(S.HEALTHY, 100.0 + policy.ABSENT_GRACE, [BREACH], absent_since=100.0)
        assert decision.start == BREACH


class TestNotJudged:
    def test_a_release_not_judged_starts_and_freezes_nothing(self) -> None:
        """While the engine is away, or somebody restarted, stopped or paused the release, a
        breach starts nothing and freezes nothing."""
        decision = tick(S.HEALTHY, 100.0, [BREACH], not_judged=True)
        assert decision.waiting
        assert decision.idle
        assert tick(S.ROLLED_BACK, 100.0, [BREACH], not_judged=True).freeze is None

    def test_once_judged_again_a_breach_counts(self) -> None:
        """The same breach starts the playbook once the release is judged again."""
        assert tick(S.HEALTHY, 100.0, [BREACH], not_judged=False).start == BREACH


class TestNewRelease:
    def test_a_new_release_bakes(self) -> None:
        decision = policy.on_new_release(S.HEALTHY, known_good=False, quarantined=False)
        assert decision.events == (Event.NEW_RELEASE,)
        assert not decision.quarantine_rollback

    def test_a_known_good_release_that_comes_back_is_healthy_at_once(self) -> None:
        decision = policy.on_new_release(S.HEALTHY, known_good=True, quarantined=False)
        assert decision.events == (Event.NEW_RELEASE, Event.BAKE_PASSED)

    def test_a_quarantined_release_is_rolled_back_at_once(self) -> None:
        assert policy.on_new_release(
            S.HEALTHY, known_good=False, quarantined=True
        ).quarantine_rollback

    @pytest.mark.parametrize("state", [S.FROZEN, S.FAILED])
    def test_a_stuck_target_records_the_release_and_stays(self, state: TargetState) -> None:
        decision = policy.on_new_release(state, known_good=True, quarantined=True)
        assert decision.events == (Event.NEW_RELEASE,)
        assert not decision.quarantine_rollback

    def test_the_events_are_legal_in_the_state_machine(self) -> None:
        for state in (S.BAKING, S.HEALTHY, S.BREACHED, S.ROLLED_BACK, S.FROZEN, S.FAILED):
            machine = TargetStateMachine(state)
            for event in policy.on_new_release(state, known_good=True, quarantined=False).events:
                machine.handle(event, 1.0)


class TestGuards:
    def test_a_gate_may_start_on_a_healthy_target(self) -> None:
        assert start(S.HEALTHY) is None

    def test_one_playbook_at_a_time_even_for_an_operator(self) -> None:
        assert "already running" in (
            start(S.HEALTHY, TriggerKind.MANUAL, playbook_running=True) or ""
        )

    def test_cooldown_after_a_rollback(self) -> None:
        assert "cooldown" in (start(S.HEALTHY, rollback_times=[9_900.0]) or "")
        assert start(S.HEALTHY, TriggerKind.MANUAL, rollback_times=[9_900.0]) is None

    def test_rollbacks_per_hour_are_capped(self) -> None:
        times = [7_000.0, 8_000.0, 9_000.0]
        assert "max_rollbacks_per_hour" in (start(S.HEALTHY, rollback_times=times) or "")

    @pytest.mark.parametrize("state", [S.FROZEN, S.FAILED])
    def test_no_automatic_action_when_stuck(self, state: TargetState) -> None:
        assert "frozen" in (start(state, TriggerKind.ALERT) or "")

    def test_auto_rollback_off_leaves_only_the_operator(self) -> None:
        assert start(S.HEALTHY, auto_rollback=False) == "auto_rollback is off"
        assert start(S.HEALTHY, TriggerKind.MANUAL, auto_rollback=False) is None

    def test_an_unwritable_store_refuses(self) -> None:
        assert "journaled" in (start(S.HEALTHY, store_writable=False) or "")

    def test_nothing_to_restore_refuses_and_names_the_release(self) -> None:
        assert start(S.HEALTHY, has_restore_target=False) == "no known-good release to roll back to"
        reason = start(S.HEALTHY, TriggerKind.MANUAL, has_restore_target=False, to="abc")
        assert reason == "no release 'abc'"

    def test_a_quarantined_release_an_operator_names_is_refused(self) -> None:
        why = "release v2 is quarantined; clear it first"
        reason = start(S.HEALTHY, TriggerKind.MANUAL, to="abc", restore_refusal=why)
        assert reason == why

    def test_an_alert_about_a_held_release_is_refused_and_an_operator_is_not(self) -> None:
        """Somebody stopped or paused the release: the alert says what they did."""
        assert start(S.HEALTHY, TriggerKind.ALERT, held=True) == policy.HELD_REFUSAL
        assert start(S.HEALTHY, TriggerKind.MANUAL, held=True) is None
        assert start(S.HEALTHY, TriggerKind.ALERT, held=False) is None

    def test_a_refused_gate_still_marks_the_breach_but_an_operator_does_not(self) -> None:
        assert policy.on_refusal(S.HEALTHY, TriggerKind.GATE) == [Event.BREACH]
        assert policy.on_refusal(S.HEALTHY, TriggerKind.MANUAL) == []
        assert policy.on_refusal(S.BREACHED, TriggerKind.ALERT) == []


class TestStartAndEnd:
    def test_dry_run_only_notes_the_breach(self) -> None:
        assert policy.on_start(S.HEALTHY, dry_run=True) == [Event.BREACH]
        assert policy.on_start(S.BREACHED, dry_run=True) == []

    def test_a_real_start_rolls_back(self) -> None:
        assert policy.on_start(S.HEALTHY, dry_run=False) == [Event.BREACH, Event.ROLLBACK_STARTED]
        assert policy.on_start(S.BREACHED, dry_run=False) == [Event.ROLLBACK_STARTED]

    def test_success_quarantines_the_bad_release(self) -> None:
        end = policy.on_playbook_end(succeeded=True, bad_image="v2", restored_image="v1")
        assert end.events == (Event.ROLLBACK_SUCCEEDED,)
        assert end.quarantine_bad
        assert end.reset_windows
        assert not end.frozen

    def test_restoring_the_same_image_quarantines_nothing(self) -> None:
        end = policy.on_playbook_end(succeeded=True, bad_image="v1", restored_image="v1")
        assert not end.quarantine_bad

    def test_failure_freezes(self) -> None:
        end = policy.on_playbook_end(succeeded=False, bad_image="v2", restored_image="v1")
        assert end.events == (Event.ROLLBACK_FAILED, Event.FREEZE)
        assert end.frozen
        machine = TargetStateMachine(S.ROLLING_BACK)
        for event in end.events:
            machine.handle(event, 1.0)
        assert machine.state is S.FROZEN
