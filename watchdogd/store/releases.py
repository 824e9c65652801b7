"""Releases, known-good and quarantine.

A target's history is kept ``keep`` releases deep, by when each was last seen running; the
newest known-good release is never pruned, so a rollback always has somewhere to go. A
quarantine is keyed by image (digest), so it also catches the same bad image deployed again
under a new config or tag.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from watchdogd.errors import StoreError
from watchdogd.model import Release
from watchdogd.store.base import StoreBase, dumps
from watchdogd.store.records import QuarantineEntry, ReleaseRecord, ReleaseState

__all__ = ["DEFAULT_HISTORY", "ReleaseStore"]

DEFAULT_HISTORY = 20


class ReleaseStore(StoreBase):
    """The store's releases and quarantine (a part of ``Store``)."""

    def record_release(
        self,
        release: Release,
        *,
        keep: int = DEFAULT_HISTORY,
        state: ReleaseState = ReleaseState.BAKING,
    ) -> tuple[ReleaseRecord, bool]:
        """Record that ``release`` runs now; return its record and whether it is new.

        A release seen before keeps its state and only moves to the top of the history (its
        ref and spec are refreshed). Then the history is pruned to the ``keep`` most recently
        seen releases, never dropping the newest known-good one.
        """
        now = self._clock()
        with self._db.write("record a release") as conn:
            existing = conn.execute(
                "SELECT 1 FROM releases WHERE target = ? AND release_id = ?",
                (release.target, release.id),
            ).fetchone()
            conn.execute(
                "INSERT INTO releases (target, release_id, image, config_hash, image_ref, "
                "spec_json, first_seen, last_seen, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (target, release_id) DO UPDATE SET last_seen = excluded.last_seen, "
                "image_ref = excluded.image_ref, spec_json = excluded.spec_json",
                (
                    release.target,
                    release.id,
                    release.image,
                    release.config_hash,
                    release.image_ref,
                    dumps(release.spec),
                    now,
                    now,
                    state.value,
                ),
            )
            conn.execute(
                "DELETE FROM releases WHERE target = :t AND release_id NOT IN ("
                "  SELECT release_id FROM releases WHERE target = :t"
                "  ORDER BY last_seen DESC, first_seen DESC, rowid DESC LIMIT :keep"
                ") AND release_id IS NOT ("
                "  SELECT release_id FROM releases WHERE target = :t AND state = 'known_good'"
                "  ORDER BY known_good_at DESC, rowid DESC LIMIT 1"
                ")",
                {"t": release.target, "keep": max(keep, 1)},
            )
            row = conn.execute(
                "SELECT * FROM releases WHERE target = ? AND release_id = ?",
                (release.target, release.id),
            ).fetchone()
        return _release_record(row), existing is None

    def release(self, target: str, release_id: str) -> ReleaseRecord | None:
        row = self._db.read_one(
            "read a release",
            "SELECT * FROM releases WHERE target = ? AND release_id = ?",
            (target, release_id),
        )
        return None if row is None else _release_record(row)

    def releases(self, target: str) -> list[ReleaseRecord]:
        """The target's history, most recently seen first."""
        rows = self._db.read(
            "read releases",
            "SELECT * FROM releases WHERE target = ? "
            "ORDER BY last_seen DESC, first_seen DESC, rowid DESC",
            (target,),
        )
        return [_release_record(row) for row in rows]

    def set_release_state(self, target: str, release_id: str, state: ReleaseState) -> None:
        """Set a release's state; ``known_good`` stamps ``known_good_at`` with now."""
        known_good_at = self._clock() if state is ReleaseState.KNOWN_GOOD else None
        with self._db.write("update a release") as conn:
            cursor = conn.execute(
                "UPDATE releases SET state = ?, "
                "known_good_at = CASE WHEN ? IS NULL THEN known_good_at ELSE ? END "
                "WHERE target = ? AND release_id = ?",
                (state.value, known_good_at, known_good_at, target, release_id),
            )
        if cursor.rowcount == 0:
            raise StoreError(f"no release {release_id} of target {target!r} in the store")

    def mark_known_good(self, target: str, release_id: str) -> None:
        self.set_release_state(target, release_id, ReleaseState.KNOWN_GOOD)

    def known_good_candidates(
        self, target: str, *, excluding: Iterable[str] = ()
    ) -> list[ReleaseRecord]:
        """Known-good releases whose image is not quarantined, newest known-good first.
        ``excluding`` takes release ids to leave out (e.g. the one that just breached)."""
        excluded = list(excluding)
        rows = self._db.read(
            "read known-good releases",
            "SELECT r.* FROM releases r WHERE r.target = ? AND r.state = 'known_good' "
            "AND NOT EXISTS (SELECT 1 FROM quarantine q "
            "                WHERE q.target = r.target AND q.image = r.image) "
            "AND r.release_id NOT IN (SELECT value FROM json_each(?)) "
            "ORDER BY r.known_good_at DESC, r.last_seen DESC, r.rowid DESC",
            (target, json.dumps(excluded)),
        )
        return [_release_record(row) for row in rows]

    def newest_known_good(
        self, target: str, *, excluding: Iterable[str] = ()
    ) -> ReleaseRecord | None:
        """Where a rollback goes: the newest known-good release that is not quarantined."""
        candidates = self.known_good_candidates(target, excluding=excluding)
        return candidates[0] if candidates else None

    # --- quarantine --------------------------------------------------------------------------

    def quarantine(
        self, target: str, image: str, reason: str, *, incident_id: str | None = None
    ) -> None:
        """Quarantine ``image`` for ``target``; its releases take the state ``quarantined``."""
        with self._db.write("quarantine a release") as conn:
            conn.execute(
                "INSERT INTO quarantine (target, image, reason, at, incident_id) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (target, image) DO UPDATE SET "
                "reason = excluded.reason, at = excluded.at, incident_id = excluded.incident_id",
                (target, image, reason, self._clock(), incident_id),
            )
            conn.execute(
                "UPDATE releases SET state = 'quarantined' WHERE target = ? AND image = ?",
                (target, image),
            )

    def unquarantine(self, target: str, image: str) -> bool:
        """Clear a quarantine; its releases become ``bad`` (not known-good: they must bake
        again). Returns whether there was one."""
        with self._db.write("clear a quarantine") as conn:
            cursor = conn.execute(
                "DELETE FROM quarantine WHERE target = ? AND image = ?", (target, image)
            )
            conn.execute(
                "UPDATE releases SET state = 'bad' "
                "WHERE target = ? AND image = ? AND state = 'quarantined'",
                (target, image),
            )
        return cursor.rowcount > 0

    def is_quarantined(self, target: str, image: str) -> bool:
        row = self._db.read_one(
            "read the quarantine",
            "SELECT 1 FROM quarantine WHERE target = ? AND image = ?",
            (target, image),
        )
        return row is not None

    def quarantined(self, target: str | None = None) -> list[QuarantineEntry]:
        rows = self._db.read(
            "read the quarantine",
            "SELECT * FROM quarantine WHERE ? IS NULL OR target = ? ORDER BY at DESC",
            (target, target),
        )
        return [
            QuarantineEntry(r["target"], r["image"], r["reason"], r["at"], r["incident_id"])
            for r in rows
        ]


def _release_record(row: sqlite3.Row) -> ReleaseRecord:
    release = Release(
        target=row["target"],
        image=row["image"],
        config_hash=row["config_hash"],
        image_ref=row["image_ref"],
        spec=json.loads(row["spec_json"]),
    )
    return ReleaseRecord(
        release=release,
        state=ReleaseState(row["state"]),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        known_good_at=row["known_good_at"],
    )
