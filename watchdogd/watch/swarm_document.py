"""The document watchdogd keeps in Swarm for one service: its shape, its JSON, its name.

Plain data with no I/O: ``swarm_state`` reads it from a Swarm config's labels, edits it and
writes it back under the config's version. It stays small (Raft refuses messages of about
1.5 MB): a few known-good releases, a bounded quarantine and history, one running incident.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from watchdogd.model import Release, Trigger
from watchdogd.playbook.plan import IncidentPlan
from watchdogd.store import JournalEntry

log = structlog.get_logger(__name__)

KNOWN_GOOD_KEPT = 5
HISTORY_KEPT = 10
QUARANTINE_KEPT = 50
DETAIL_CHARS = 300
STATE_LABEL = "watchdogd.state"
SERVICE_LABEL = "watchdogd.service"
CONFIG_DATA = b"watchdogd state of a Swarm service; it is kept in this config's labels\n"


def config_name(service: str) -> str:
    """Swarm names are at most 64 characters; a long service name is cut and hashed."""
    name = f"watchdogd-state.{service}"
    if len(name) <= 64:
        return name
    return f"watchdogd-state.{service[:38]}-{hashlib.sha256(service.encode()).hexdigest()[:8]}"


def release_data(release: Release | None) -> dict[str, Any] | None:
    return None if release is None else dict(json.loads(release.to_json()), id=release.id)


def release_from(data: dict[str, Any] | None, target: str) -> Release | None:
    """A release as this instance names its target (two configs may name it differently)."""
    if data is None:
        return None
    fields = {k: data[k] for k in ("image", "config_hash", "image_ref", "spec") if k in data}
    return Release(target=target, **fields)


def trigger_from(data: dict[str, Any]) -> Trigger:
    return Trigger.from_dict(data)


def journal_copy(entries: Iterable[JournalEntry]) -> list[dict[str, Any]]:
    return [
        {
            "step_index": e.step_index,
            "action": e.action,
            "status": e.status.value,
            "detail": e.detail[:DETAIL_CHARS],
        }
        for e in entries
    ]


def incident_entry(plan: IncidentPlan, owner: str, lease_until: float) -> dict[str, Any]:
    return {
        "id": plan.incident_id,
        "owner": owner,
        "lease_until": lease_until,
        "trigger": plan.trigger.to_dict(),
        "bad_release": release_data(plan.bad_release),
        "restore_release": release_data(plan.restore_release),
        "dry_run": plan.dry_run,
        "actions": list(plan.actions),
        "journal": [],
    }


def ended_entry(held: dict[str, Any], state: str, now: float, detail: str) -> dict[str, Any]:
    bad = held.get("bad_release") or {}
    return {
        "id": held["id"],
        "owner": held["owner"],
        "bad_release": bad.get("id"),
        "bad_image": bad.get("image"),
        "state": state,
        "ended_at": now,
        "detail": detail[:DETAIL_CHARS],
    }


@dataclass
class Document:
    known_good: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    incident: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Document:
        """The document in a config's labels; a missing or unreadable one reads as empty (and
        an unreadable one is logged: the next write replaces it)."""
        text = ((config.get("Spec") or {}).get("Labels") or {}).get(STATE_LABEL) or "{}"
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {"incident": "unreadable"}
        lists = [data.get(k, []) for k in ("known_good", "quarantine", "history")]
        incident = data.get("incident")
        if all(isinstance(v, list) for v in lists) and isinstance(incident, dict | None):
            return cls(lists[0], lists[1], incident, lists[2])
        log.error("swarm_state_unreadable", config=config.get("ID"))
        return cls()

    def dump(self) -> str:
        return json.dumps({"schema": 1, **asdict(self)}, sort_keys=True, separators=(",", ":"))

    def add_known_good(self, release: Release, now: float) -> None:
        rest = [k for k in self.known_good if k["release"]["id"] != release.id]
        entry = {"release": release_data(release), "at": now}
        self.known_good = [entry, *rest][:KNOWN_GOOD_KEPT]

    def add_quarantine(self, image: str, incident: str, now: float) -> None:
        entry = {
            "image": image,
            "reason": f"rolled back by incident {incident}",
            "incident_id": incident,
            "at": now,
        }
        rest = [q for q in self.quarantine if q["image"] != image]
        self.quarantine = [entry, *rest][:QUARANTINE_KEPT]

    def ended(self, entry: dict[str, Any]) -> None:
        self.history = [entry, *(h for h in self.history if h["id"] != entry["id"])][:HISTORY_KEPT]
