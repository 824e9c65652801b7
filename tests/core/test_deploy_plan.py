"""The deploy's pure rules: stages, what a restart does, pre-checks, promotion, canary steps."""

from __future__ import annotations

import itertools

import pytest

from watchdogd.core.deploy_plan import (
    FINAL_STAGES,
    GREEN_SERVING,
    PreCheckTally,
    ResumeAction,
    Stage,
    Step,
    StepClock,
    bake_verdict,
    can_move,
    canary_weights,
    outcome_exit_code,
    resume_action,
    step_verdict,
)
from watchdogd.core.gates import Verdict


class TestStages:
    def test_forward_path(self) -> None:
        path = [
            Stage.STARTED,
            Stage.GREEN_CREATED,
            Stage.GREEN_READY,
            Stage.SWITCHING,
            Stage.BAKING,
            Stage.PROMOTING,
            Stage.PROMOTED,
        ]
        assert all(can_move(a, b) for a, b in itertools.pairwise(path))

    def test_before_the_switch_the_way_back_is_abort(self) -> None:
        for stage in (Stage.STARTED, Stage.GREEN_CREATED, Stage.GREEN_READY):
            assert can_move(stage, Stage.ABORTED)
            assert not can_move(stage, Stage.ROLLING_BACK)

    def test_after_the_switch_the_way_back_is_a_switch(self) -> None:
        for stage in (Stage.SWITCHING, Stage.BAKING):
            assert can_move(stage, Stage.ROLLING_BACK)
            assert not can_move(stage, Stage.ABORTED)
        assert can_move(Stage.ROLLING_BACK, Stage.ROLLED_BACK)

    def test_final_stages_go_nowhere(self) -> None:
        for final in FINAL_STAGES:
            assert not any(can_move(final, other) for other in Stage)

    def test_exit_codes(self) -> None:
        assert outcome_exit_code(Stage.PROMOTED) == 0
        for stage in (Stage.ROLLED_BACK, Stage.ABORTED, Stage.FAILED):
            assert outcome_exit_code(stage) == 1


class TestResume:
    @pytest.mark.parametrize("stage", [Stage.STARTED, Stage.GREEN_CREATED, Stage.GREEN_READY])
    def test_never_switched_is_aborted(self, stage: Stage) -> None:
        assert resume_action(stage, green_exists=True) is ResumeAction.ABORT
        assert resume_action(stage, green_exists=False) is ResumeAction.ABORT

    @pytest.mark.parametrize("stage", [Stage.SWITCHING, Stage.BAKING])
    def test_a_cut_bake_goes_back_to_blue(self, stage: Stage) -> None:
        assert stage in GREEN_SERVING
        assert resume_action(stage, green_exists=True) is ResumeAction.ROLL_BACK
        assert resume_action(stage, green_exists=False) is ResumeAction.ROLL_BACK

    @pytest.mark.parametrize("stage", [Stage.SWITCHING, Stage.BAKING])
    def test_without_blue_green_is_judged_again(self, stage: Stage) -> None:
        assert resume_action(stage, green_exists=True, blue_exists=False) is ResumeAction.REBAKE

    def test_half_done_endings_are_finished(self) -> None:
        assert resume_action(Stage.ROLLING_BACK, green_exists=True) is ResumeAction.ROLL_BACK
        assert resume_action(Stage.PROMOTING, green_exists=True) is ResumeAction.PROMOTE

    @pytest.mark.parametrize("stage", sorted(FINAL_STAGES))
    def test_finished_deploys_are_left_alone(self, stage: Stage) -> None:
        assert resume_action(stage, green_exists=True) is ResumeAction.NOTHING


class TestPreCheckTally:
    def test_passes_after_enough_in_a_row(self) -> None:
        tally = PreCheckTally("api", needed=3, max_latency=1.0)
        for _ in range(2):
            tally.add(True, 0.01, "")
        assert not tally.passed
        tally.add(True, 0.01, "")
        assert tally.passed
        assert "3 passes in a row" in tally.summary()

    def test_a_failure_restarts_the_run(self) -> None:
        tally = PreCheckTally("api", needed=2, max_latency=1.0)
        tally.add(True, 0.01, "")
        tally.add(False, 0.01, "status 500, expected 200")
        tally.add(True, 0.01, "")
        assert not tally.passed
        assert not tally.failed

    def test_too_slow_counts_as_a_failure(self) -> None:
        tally = PreCheckTally("api", needed=2, max_latency=0.5)
        tally.add(True, 3.0, "")
        tally.add(True, 3.0, "")
        assert tally.failed
        assert "over max_latency" in tally.summary()

    def test_fails_after_enough_failures_in_a_row(self) -> None:
        tally = PreCheckTally("login", needed=3, max_latency=1.0)
        for _ in range(3):
            tally.add(False, None, "step 'login': status 401, expected 200")
        assert tally.failed
        assert "401" in tally.summary()


class TestBakeVerdict:
    def test_needs_the_whole_bake(self) -> None:
        ready, why = bake_verdict(
            elapsed=10, bake_time=60, requests=500, min_requests=20, breach_pending=False
        )
        assert not ready
        assert "baking" in why

    def test_needs_user_traffic(self) -> None:
        ready, why = bake_verdict(
            elapsed=61, bake_time=60, requests=3, min_requests=20, breach_pending=False
        )
        assert not ready
        assert "3 of 20 requests" in why

    def test_waits_out_a_pending_breach(self) -> None:
        ready, _why = bake_verdict(
            elapsed=61, bake_time=60, requests=500, min_requests=20, breach_pending=True
        )
        assert not ready

    def test_promotes(self) -> None:
        ready, why = bake_verdict(
            elapsed=61, bake_time=60, requests=500, min_requests=20, breach_pending=False
        )
        assert ready
        assert "500 user requests" in why


class TestSteps:
    STEP = Step(weight=25, duration=60.0)

    def verdict(self, verdicts: dict[str, Verdict], *, strict: bool = True) -> tuple[bool, str]:
        return step_verdict(
            step=self.STEP,
            elapsed=61,
            verdicts=verdicts,
            reasons={"traffic:error_rate": "12 samples in the window, 20 needed"},
            strict=strict,
            requests=500,
            min_requests=20,
            breach_pending=False,
        )

    def test_a_canary_step_needs_every_gate_ok(self) -> None:
        ready, why = self.verdict({"traffic:error_rate": Verdict.UNKNOWN})
        assert not ready
        assert why == (
            "waiting for evidence: traffic:error_rate: 12 samples in the window, 20 needed"
        )
        ready, why = self.verdict({"traffic:error_rate": Verdict.OK})
        assert ready
        assert "every gate ok" in why

    def test_it_names_how_many_more_gates_wait(self) -> None:
        ready, why = self.verdict(
            {"traffic:error_rate": Verdict.UNKNOWN, "traffic:latency_p95": Verdict.UNKNOWN}
        )
        assert not ready
        assert why.endswith("(and 1 more)")

    def test_a_blue_green_bake_is_not_held_by_unknown(self) -> None:
        ready, _why = self.verdict({"traffic:error_rate": Verdict.UNKNOWN}, strict=False)
        assert ready

    def test_every_bake_rule_still_holds(self) -> None:
        ready, why = step_verdict(
            step=self.STEP,
            elapsed=30,
            verdicts={"traffic:error_rate": Verdict.OK},
            reasons={},
            strict=True,
            requests=500,
            min_requests=20,
            breach_pending=False,
        )
        assert not ready
        assert why.startswith("baking")

    def test_weights_split_one_hundred(self) -> None:
        assert canary_weights(5) == (5, 95)
        assert canary_weights(100) == (100, 0)
        assert self.STEP.label(1, 3) == "step 2/3 (green 25 %)"


class TestStepClock:
    def test_a_pause_stops_the_clock(self) -> None:
        clock = StepClock(started=100.0)
        assert clock.elapsed(110.0) == 10.0
        assert clock.pause(110.0)
        assert not clock.pause(111.0)  # already paused
        assert clock.paused
        assert clock.elapsed(150.0) == 10.0
        assert clock.resume(150.0)
        assert not clock.resume(151.0)  # not paused
        assert clock.elapsed(155.0) == 15.0
        assert clock.pause(160.0)
        assert clock.resume(170.0)
        assert clock.elapsed(175.0) == 25.0
