"""What the runner is handed and what it hands back: the plan of one incident, step results,
and the outcome. Plain frozen values; the store's records convert to and from them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watchdogd.config.steps import Step
from watchdogd.model import Release, Trigger
from watchdogd.store.records import IncidentRecord, IncidentState, JournalEntry, StepStatus

__all__ = ["DEFAULT_STOP_TIMEOUT", "IncidentOutcome", "IncidentPlan", "StepResult"]

DEFAULT_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class IncidentPlan:
    """One incident to run: why, from which release to which, and the steps.

    The runner does not decide whether to roll back; guards (cooldown, rate limit, quarantine,
    one playbook per target) are checked before a plan is made. ``stop_timeout`` applies to a
    ``rollback`` step that sets none of its own.
    """

    incident_id: str
    target: str
    trigger: Trigger
    bad_release: Release | None
    restore_release: Release | None
    steps: tuple[Step, ...]
    dry_run: bool = False
    stop_timeout: float = DEFAULT_STOP_TIMEOUT

    @classmethod
    def new(
        cls,
        *,
        target: str,
        trigger: Trigger,
        bad_release: Release | None,
        restore_release: Release | None,
        steps: Sequence[Step],
        dry_run: bool = False,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    ) -> IncidentPlan:
        """A plan for a new incident, with a fresh id."""
        return cls(
            incident_id=str(uuid.uuid4()),
            target=target,
            trigger=trigger,
            bad_release=bad_release,
            restore_release=restore_release,
            steps=tuple(steps),
            dry_run=dry_run,
            stop_timeout=stop_timeout,
        )

    @classmethod
    def from_record(
        cls,
        record: IncidentRecord,
        steps: Sequence[Step],
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    ) -> IncidentPlan:
        """The plan of a stored incident, to resume it after a restart. ``steps`` is the
        target's playbook from the config (the store keeps only the action names)."""
        return cls(
            incident_id=record.id,
            target=record.target,
            trigger=record.trigger,
            bad_release=record.bad_release,
            restore_release=record.restore_release,
            steps=tuple(steps),
            dry_run=record.dry_run,
            stop_timeout=stop_timeout,
        )

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(step.action for step in self.steps)


@dataclass(frozen=True)
class StepResult:
    index: int
    action: str
    status: StepStatus
    attempts: int
    detail: str

    @classmethod
    def from_journal(cls, entry: JournalEntry) -> StepResult:
        return cls(entry.step_index, entry.action, entry.status, entry.attempt, entry.detail)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "action": self.action,
            "status": self.status.value,
            "attempts": self.attempts,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class IncidentOutcome:
    """How an incident ended. ``resumed`` is True when this run picked up after a restart;
    ``already_finished`` when the incident had ended before and nothing was run."""

    incident_id: str
    state: IncidentState
    steps: tuple[StepResult, ...]
    duration_seconds: float
    resumed: bool = False
    already_finished: bool = False
    detail: str = ""

    @property
    def succeeded(self) -> bool:
        return self.state is IncidentState.SUCCEEDED

    @property
    def interrupted(self) -> tuple[StepResult, ...]:
        """Steps that were in flight at a crash and, not being idempotent, were not re-run."""
        return tuple(s for s in self.steps if s.status is StepStatus.INTERRUPTED)
