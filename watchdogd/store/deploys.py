"""Blue-green deploys: one row per deploy, rewritten at every stage before the next action.

``body`` is the deploy's whole journal entry as JSON (which containers and HAProxy servers are
blue and green, their releases, the numbers so far), so that a restarted daemon finds every
container and server the deploy made (watchdogd/deploy/resume.py).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from watchdogd.store.base import StoreBase, dumps

__all__ = ["DeployRecord", "DeployStore"]

_FINAL = ("promoted", "rolled_back", "aborted", "failed")


@dataclass(frozen=True)
class DeployRecord:
    id: str
    target: str
    image: str
    stage: str
    started_at: float
    updated_at: float
    ended_at: float | None = None
    reason: str = ""
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.stage in _FINAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "image": self.image,
            "stage": self.stage,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "ended_at": self.ended_at,
            "reason": self.reason,
            "final": self.final,
        }


class DeployStore(StoreBase):
    """The store's deploy journal (a part of ``Store``)."""

    def save_deploy(
        self,
        deploy_id: str,
        *,
        target: str,
        image: str,
        stage: str,
        reason: str = "",
        body: dict[str, Any] | None = None,
    ) -> DeployRecord:
        """Create or update a deploy's row in one transaction (committed before returning)."""
        now = self._clock()
        ended = now if stage in _FINAL else None
        with self._db.write("journal a deploy") as conn:
            conn.execute(
                "INSERT INTO deploys (id, target, image, stage, started_at, updated_at, ended_at, "
                "reason, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "stage = excluded.stage, updated_at = excluded.updated_at, "
                "ended_at = excluded.ended_at, reason = excluded.reason, body = excluded.body",
                (deploy_id, target, image, stage, now, now, ended, reason, dumps(body or {})),
            )
            row = conn.execute("SELECT * FROM deploys WHERE id = ?", (deploy_id,)).fetchone()
        return _record(row)

    def rewrite_body(self, deploy_id: str, body: dict[str, Any]) -> None:
        """Replace a deploy's body alone: its stage and times stay (a finished deploy's server
        followed its container to a new port)."""
        with self._db.write("rewrite a deploy's body") as conn:
            conn.execute(
                "UPDATE deploys SET body = ?, updated_at = ? WHERE id = ?",
                (dumps(body), self._clock(), deploy_id),
            )

    def deploy(self, deploy_id: str) -> DeployRecord | None:
        row = self._db.read_one("read a deploy", "SELECT * FROM deploys WHERE id = ?", (deploy_id,))
        return _record(row) if row is not None else None

    def deploys(self, target: str, *, limit: int = 20) -> list[DeployRecord]:
        """The target's deploys, newest first."""
        rows = self._db.read(
            "read deploys",
            "SELECT * FROM deploys WHERE target = ? ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (target, limit),
        )
        return [_record(row) for row in rows]

    def open_deploys(self) -> list[DeployRecord]:
        """Deploys a crash left unfinished, oldest first."""
        marks = ", ".join("?" for _ in _FINAL)
        rows = self._db.read(
            "read open deploys",
            f"SELECT * FROM deploys WHERE stage NOT IN ({marks}) ORDER BY started_at",  # noqa: S608 - placeholders only
            _FINAL,
        )
        return [_record(row) for row in rows]


def _record(row: sqlite3.Row) -> DeployRecord:
    return DeployRecord(
        id=row["id"],
        target=row["target"],
        image=row["image"],
        stage=row["stage"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        ended_at=row["ended_at"],
        reason=row["reason"],
        body=json.loads(row["body"]),
    )
