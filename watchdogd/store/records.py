"""What the state store hands back: plain frozen records, one per table row.

They carry no connection and no behaviour, so the daemon, the API and the CLI can pass them
around (and JSON them) freely.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from watchdogd.model import Release, Trigger, public_release

__all__ = [
    "AuditEvent",
    "IncidentRecord",
    "IncidentState",
    "JournalEntry",
    "QuarantineEntry",
    "ReleaseRecord",
    "ReleaseState",
    "StepStatus",
]


class ReleaseState(StrEnum):
    BAKING = "baking"
    KNOWN_GOOD = "known_good"
    BAD = "bad"
    QUARANTINED = "quarantined"


class IncidentState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"


class StepStatus(StrEnum):
    """A journal row's status. ``started`` is the only one that is not final: a row still
    ``started`` after a restart is a step that was in flight when watchdogd stopped."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        return self is not StepStatus.STARTED


@dataclass(frozen=True)
class ReleaseRecord:
    release: Release
    state: ReleaseState
    first_seen: float
    last_seen: float
    known_good_at: float | None = None

    @property
    def release_id(self) -> str:
        return self.release.id

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the spec (a container's env may hold secrets)."""
        release = self.release
        return {
            "target": release.target,
            "release_id": release.id,
            "image": release.image,
            "image_ref": release.image_ref,
            "config_hash": release.config_hash,
            "state": self.state.value,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "known_good_at": self.known_good_at,
        }


@dataclass(frozen=True)
class QuarantineEntry:
    target: str
    image: str
    reason: str
    at: float
    incident_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IncidentRecord:
    id: str
    target: str
    trigger: Trigger
    bad_release: Release | None
    restore_release: Release | None
    state: IncidentState
    started_at: float
    ended_at: float | None
    dry_run: bool
    actions: tuple[str, ...] = ()
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, releases without their spec."""

        return {
            "id": self.id,
            "target": self.target,
            "trigger": self.trigger.to_dict(),
            "bad_release": public_release(self.bad_release),
            "restore_release": public_release(self.restore_release),
            "state": self.state.value,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "dry_run": self.dry_run,
            "actions": list(self.actions),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class JournalEntry:
    """One playbook step of one incident. ``attempt`` counts tries across restarts."""

    incident_id: str
    step_index: int
    action: str
    attempt: int
    status: StepStatus
    started_at: float
    ended_at: float | None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: float
    target: str | None
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    incident_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
