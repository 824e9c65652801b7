"""Values that cross module boundaries: releases and the facts of an incident.

Plain frozen dataclasses, JSON-friendly, so the store can journal them and the API can show
them without translation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Release:
    """What a target runs: an image (digest, or image ID where there is none) plus a fingerprint
    of its configuration. ``spec`` holds what a driver needs to put this release back (for a
    container, its inspect output); it takes no part in identity."""

    target: str
    image: str
    config_hash: str
    image_ref: str = ""
    spec: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def id(self) -> str:
        """A short, stable name for this release, shown to users and accepted by ``--to``."""
        digest = hashlib.sha256(f"{self.image}\0{self.config_hash}".encode()).hexdigest()
        return digest[:12]

    @property
    def label(self) -> str:
        """How people name it: the reference they deployed, else the image."""
        return self.image_ref or self.image

    def public(self) -> dict[str, str]:
        """The one public form of a release, as the API, notifications and history show it:
        never the spec (a container's environment may hold secrets)."""
        return {
            "id": self.id,
            "image": self.image,
            "image_ref": self.image_ref,
            "config_hash": self.config_hash,
        }

    def to_json(self) -> str:
        """The full form, spec included, for the store and the Swarm state document."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Release:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class ExecResult:
    """What a command run inside a release (an ``exec`` step) printed and returned."""

    exit_code: int
    output: str


#: Docker's ``State.StartedAt`` of a container that was created and never started.
NEVER_STARTED = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Starts:
    """When the runtime last started each container of what runs, how many starts its restart
    policy made (Docker's ``RestartCount``, which a ``docker restart`` leaves alone), which
    containers wait for the policy to start them again (``State.Restarting``), and which
    somebody holds (paused, or stopped on request)."""

    started: frozenset[tuple[str, str]]  # (container id, State.StartedAt), one per container
    by_policy: int
    pending: frozenset[str] = frozenset()  # ids the restart policy is about to start
    # Ids somebody holds: paused, or stopped on request (``docker stop``, ``docker kill``).
    held: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, inspects: Iterable[Mapping[str, Any]], stopped: frozenset[str] = frozenset()
    ) -> Starts:
        """From inspect outputs; ``stopped``: the ids the engine says were stopped on request
        (the driver asks it, ``DockerEngine.stop_requested``)."""
        found = [
            (str(i.get("Id", "")), i.get("State") or {}, i.get("RestartCount")) for i in inspects
        ]
        return cls(
            started=frozenset(
                (cid, str(state.get("StartedAt") or NEVER_STARTED)) for cid, state, _ in found
            ),
            by_policy=sum(int(count or 0) for _, _, count in found),
            pending=frozenset(cid for cid, state, _ in found if state.get("Restarting")),
            held=stopped | frozenset(cid for cid, state, _ in found if state.get("Paused")),
        )

    def started_again_since(self, before: Starts) -> bool:
        """A container that had run before ``before`` was taken has been started again since,
        and not by its restart policy: somebody's ``docker restart``. Not a crash answered
        (the count grew, or ``before`` saw the container waiting for its restart), not a new
        container's first start (a deploy's)."""
        if self.by_policy > before.by_policy:
            return False
        earlier = dict(before.started)
        return any(
            earlier.get(cid, at) != at and earlier[cid] != NEVER_STARTED
            for cid, at in self.started
            if cid not in before.pending
        )


def public_release(release: Release | None) -> dict[str, str] | None:
    """``release.public()``, or None."""
    return None if release is None else release.public()


def fingerprint(config: Any) -> str:
    """A stable hash of JSON-able configuration, for ``Release.config_hash``."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class TriggerKind(StrEnum):
    """What started a playbook; the guards treat each differently (``core.guards``)."""

    GATE = "gate"
    ALERT = "alert"
    MANUAL = "manual"
    QUARANTINE = "quarantine"


@dataclass(frozen=True)
class Trigger:
    """Why a playbook started: a gate with its numbers, an alert, an operator, or a quarantined
    release coming back. ``kind`` is the enum everywhere inside; ``to_dict``/``from_dict`` are
    its string form at the edges (store, Swarm document, JSON, logs)."""

    kind: TriggerKind
    name: str  # the gate, the alert name, the operator's reason
    reason: str  # a sentence with the numbers
    numbers: dict[str, float | int | str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "reason": self.reason,
            "numbers": dict(self.numbers),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trigger:
        """The inverse of ``to_dict``; ``ValueError`` for a kind no watchdogd writes."""
        kind = TriggerKind(data["kind"])
        return cls(kind, data["name"], data["reason"], data.get("numbers") or {})
