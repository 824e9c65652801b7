"""The blue-green deploy as a state machine, and the rules it decides by. Pure: no I/O.

A deploy moves forward through these stages, each journaled before the next action::

    started -> green_created -> green_ready -> switching -> baking -> promoting -> promoted
                  |                |              |           |
                  +----------------+--> aborted   +-----------+--> rolling_back -> rolled_back

* Before ``switching`` no user request has reached green: stopping the deploy means removing
  green (``aborted``), and blue never stopped serving.
* From ``switching`` on, users may be on green: going back is a switch (``rolling_back``).

After a crash (``resume_action``), a deploy that never switched is aborted (green removed: it
was never judged and nobody is waiting for it); one that switched goes back to blue (green's
bake was cut short and its windows are lost, while blue is known-good and still running;
only when blue is gone is green judged again, from the start); one that was rolling back or
promoting finishes that. So traffic never stays on an unjudged release with nobody watching,
and no container outlives its record. It also lets a switch back act before it journals
(the fastest path for users): a crash in between ends the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from watchdogd.core.gates import Verdict


class Stage(StrEnum):
    STARTED = "started"
    GREEN_CREATED = "green_created"
    GREEN_READY = "green_ready"
    SWITCHING = "switching"
    BAKING = "baking"
    PROMOTING = "promoting"
    ROLLING_BACK = "rolling_back"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    FAILED = "failed"


FINAL_STAGES = frozenset({Stage.PROMOTED, Stage.ROLLED_BACK, Stage.ABORTED, Stage.FAILED})
# Stages in which users may be served by green.
GREEN_SERVING = frozenset({Stage.SWITCHING, Stage.BAKING, Stage.PROMOTING})

_NEXT: dict[Stage, frozenset[Stage]] = {
    Stage.STARTED: frozenset({Stage.GREEN_CREATED, Stage.ABORTED, Stage.FAILED}),
    Stage.GREEN_CREATED: frozenset({Stage.GREEN_READY, Stage.ABORTED, Stage.FAILED}),
    Stage.GREEN_READY: frozenset({Stage.SWITCHING, Stage.ABORTED, Stage.FAILED}),
    Stage.SWITCHING: frozenset({Stage.BAKING, Stage.ROLLING_BACK, Stage.FAILED}),
    # Back to switching: a restarted daemon makes sure users are on green, then bakes again.
    Stage.BAKING: frozenset({Stage.SWITCHING, Stage.PROMOTING, Stage.ROLLING_BACK, Stage.FAILED}),
    Stage.PROMOTING: frozenset({Stage.PROMOTED, Stage.FAILED}),
    Stage.ROLLING_BACK: frozenset({Stage.ROLLED_BACK, Stage.FAILED}),
}


def can_move(before: Stage, after: Stage) -> bool:
    return after in _NEXT.get(before, frozenset())


def outcome_exit_code(stage: Stage) -> int:
    """``watchdogd deploy``'s exit code for a finished deploy: 0 promoted, 1 otherwise."""
    return 0 if stage is Stage.PROMOTED else 1


class ResumeAction(StrEnum):
    ABORT = "abort"  # remove green; blue serves
    REBAKE = "rebake"  # blue is gone: make sure users are on green, judge it from the start
    ROLL_BACK = "roll_back"  # finish the switch back to blue
    PROMOTE = "promote"  # finish retiring blue
    NOTHING = "nothing"


def resume_action(stage: Stage, *, green_exists: bool, blue_exists: bool = True) -> ResumeAction:
    """What a restarted daemon does with a deploy a crash left at ``stage``."""
    if stage in FINAL_STAGES:
        return ResumeAction.NOTHING
    if stage is Stage.PROMOTING:
        return ResumeAction.PROMOTE
    if stage is Stage.ROLLING_BACK:
        return ResumeAction.ROLL_BACK
    if stage in (Stage.SWITCHING, Stage.BAKING):
        # The bake was cut short: back to blue, which is known-good. Only without blue is
        # green (then all there is) judged again, by a daemon that is watching.
        return ResumeAction.REBAKE if green_exists and not blue_exists else ResumeAction.ROLL_BACK
    if stage is Stage.STARTED or stage is Stage.GREEN_CREATED or stage is Stage.GREEN_READY:
        return ResumeAction.ABORT
    return ResumeAction.NOTHING


# --- weights -----------------------------------------------------------------------------------

FULL_WEIGHT = 100


def switched_to(serving: str, others: list[str]) -> dict[str, int]:
    """The split that sends every request to ``serving`` (others at weight 0)."""
    weights = dict.fromkeys(others, 0)
    weights[serving] = FULL_WEIGHT
    return weights


def serving_servers(weights: Mapping[str, int]) -> list[str]:
    return sorted(name for name, weight in weights.items() if weight > 0)


# --- pre-promotion checks -----------------------------------------------------------------------


@dataclass
class PreCheckTally:
    """One probe check's run against green. Rule: ``needed`` consecutive passes (each within
    ``max_latency``) pass it; ``needed`` consecutive failures fail it early; otherwise the
    caller's deadline decides (a check that never settles fails)."""

    check: str
    needed: int
    max_latency: float
    passes_in_row: int = 0
    failures_in_row: int = 0
    samples: int = 0
    last_failure: str = ""

    def add(self, ok: bool, latency: float | None, detail: str) -> None:
        self.samples += 1
        if ok and latency is not None and latency > self.max_latency:
            ok, detail = (
                False,
                f"answered in {latency:.3f} s, over max_latency {self.max_latency:g} s",
            )
        if ok:
            self.passes_in_row += 1
            self.failures_in_row = 0
        else:
            self.failures_in_row += 1
            self.passes_in_row = 0
            self.last_failure = detail or "failed"

    @property
    def passed(self) -> bool:
        return self.passes_in_row >= self.needed

    @property
    def failed(self) -> bool:
        return self.failures_in_row >= self.needed

    def summary(self) -> str:
        if self.passed:
            return f"{self.check}: {self.passes_in_row} passes in a row"
        return f"{self.check}: {self.last_failure or 'no passing sample'} ({self.samples} samples)"


# --- promotion ---------------------------------------------------------------------------------


def bake_verdict(
    *, elapsed: float, bake_time: float, requests: int, min_requests: int, breach_pending: bool
) -> tuple[bool, str]:
    """Whether green may be promoted now, and if not why. It must have baked ``bake_time``,
    served at least ``min_requests`` user requests (a bake that saw no traffic judged
    nothing: it goes on until it does), and no gate may be waiting out its ``for:``."""
    if elapsed < bake_time:
        return False, f"baking, {elapsed:.0f} s of {bake_time:g} s"
    if requests < min_requests:
        return False, f"waiting for user traffic: {requests} of {min_requests} requests"
    if breach_pending:
        return False, "a gate's breach is pending"
    return True, f"baked {elapsed:.0f} s on {requests} user requests"


# --- steps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One stage of green's exposure: ``weight`` % of the requests for at least ``duration``
    seconds. A blue-green deploy is a single step at 100 % for the bake time."""

    weight: int
    duration: float

    def label(self, index: int, total: int) -> str:
        return f"step {index + 1}/{total} (green {self.weight} %)"


def canary_weights(weight: int) -> tuple[int, int]:
    """HAProxy weights (green, blue) that send ``weight`` % of new requests to green."""
    return weight, FULL_WEIGHT - weight


def step_verdict(
    *,
    step: Step,
    elapsed: float,
    verdicts: Mapping[str, Verdict],
    reasons: Mapping[str, str],
    strict: bool,
    requests: int,
    min_requests: int,
    breach_pending: bool,
) -> tuple[bool, str]:
    """Whether green may leave ``step`` (the next step, or promotion after the last), and if
    not why. Every rule of ``bake_verdict`` holds. A canary (``strict``) also needs every
    gate of green ``ok``: ``unknown`` is too little evidence to expose more users, so the
    step waits, and says which gate needs what."""
    ready, why = bake_verdict(
        elapsed=elapsed,
        bake_time=step.duration,
        requests=requests,
        min_requests=min_requests,
        breach_pending=breach_pending,
    )
    if not ready or not strict:
        return ready, why
    unsure = [name for name, verdict in verdicts.items() if verdict is not Verdict.OK]
    if unsure:
        first = unsure[0]
        return False, f"waiting for evidence: {first}: {reasons.get(first, 'unknown')}" + (
            f" (and {len(unsure) - 1} more)" if len(unsure) > 1 else ""
        )
    return True, f"every gate ok after {elapsed:.0f} s on {requests} requests of green"


@dataclass
class StepClock:
    """Time spent in the current step, stopped while an operator pauses the deploy."""

    started: float
    paused_at: float | None = None
    paused_for: float = 0.0

    def elapsed(self, now: float) -> float:
        stopped = self.paused_for + (now - self.paused_at if self.paused_at is not None else 0.0)
        return max(0.0, now - self.started - stopped)

    def pause(self, now: float) -> bool:
        if self.paused_at is not None:
            return False
        self.paused_at = now
        return True

    def resume(self, now: float) -> bool:
        if self.paused_at is None:
            return False
        self.paused_for += now - self.paused_at
        self.paused_at = None
        return True

    @property
    def paused(self) -> bool:
        return self.paused_at is not None
