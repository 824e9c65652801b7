"""The two sides of a blue-green deploy as the journal records them, and what a deploy asks
of the rest of the daemon."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from watchdogd.core.deploy_plan import Stage
from watchdogd.deploy.proxy import Slot
from watchdogd.model import Release
from watchdogd.store.deploys import DeployRecord

# Which side of a finished deploy serves afterwards.
_SERVING_SIDE: dict[str, str] = {
    Stage.PROMOTED: "green",
    Stage.ROLLED_BACK: "blue",
    Stage.ABORTED: "blue",
}


@dataclass
class Side:
    """Blue or green: its container, its release and its HAProxy server."""

    container: str
    release: Release | None = None
    slot: Slot | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "release": self.release.to_json() if self.release else None,
            "slot": self.slot.to_dict() if self.slot else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Side:
        release = data.get("release")
        slot = data.get("slot")
        return cls(
            container=str(data["container"]),
            release=Release.from_json(release) if release else None,
            slot=Slot.from_dict(slot) if slot else None,
        )


def serving_side(records: Iterable[DeployRecord]) -> tuple[DeployRecord, str] | None:
    """The newest finished deploy that left a server serving, and which of its sides
    ("green" after a promotion, "blue" after a rollback or an abort) that server is."""
    for record in records:
        side = _SERVING_SIDE.get(record.stage)
        if side is not None and (record.body.get(side) or {}).get("slot"):
            return record, side
    return None


@dataclass
class Hooks:
    """What a deploy asks of the rest of the daemon."""

    # Start the target's playbook with green as the bad release; returns the refusal, if any.
    start_playbook: Callable[[str, dict[str, Any]], Awaitable[str | None]]
    # Whether that playbook still runs.
    playbook_running: Callable[[], bool]
    # Tell the target's controller that the serving release changed.
    observe: Callable[[], Awaitable[None]]
    notify: Callable[[str, str, dict[str, Any]], Awaitable[None]]
    mark_known_good: Callable[[Release], Awaitable[None]]
