"""One target's records in the state store, as the controller reads and writes them: the
audit log, releases, known-good and quarantine, and the picture of them ``/metrics`` exports.

A store that fails is logged and answered with "nothing known", never raised into a decision:
the controller keeps running on what it knows, and the store's own metric reports the fault.
"""

from __future__ import annotations

from typing import Any

import structlog

from watchdogd.errors import ControlRefused, StoreError
from watchdogd.model import Release, Trigger
from watchdogd.store import ReleaseRecord, Store

log = structlog.get_logger(__name__)

HOUR = 3600.0


class TargetRecords:
    def __init__(self, target: str, store: Store) -> None:
        self.target = target
        self.store = store
        # (image, state) of the known-good and quarantined releases for watchdogd_release_info;
        # refreshed when they change, so a scrape reads no database.
        self.catalogue: list[tuple[str, str]] = []

    def audit(self, kind: str, message: str, data: dict[str, Any]) -> None:
        try:
            self.store.audit(kind, message, target=self.target, data=data)
        except StoreError as err:
            log.error("audit_write_failed", target=self.target, error=str(err), message=message)

    def refused(self, trigger: Trigger, reason: str) -> None:
        """A rollback was asked for and not started: the audit row and the log line."""
        self.audit(
            "rollback_refused",
            f"{trigger.reason}; not rolling back: {reason}",
            {"trigger": trigger.to_dict()},
        )
        log.warning(
            "target_rollback_refused", target=self.target, trigger=trigger.name, reason=reason
        )

    def frozen(self, message: str, data: dict[str, Any]) -> None:
        """The target froze: no further automatic rollback until an operator unfreezes it."""
        self.audit("frozen", message, data)
        log.error("target_frozen", target=self.target, reason=message)

    def refresh(self) -> None:
        """Re-read the known-good and quarantined releases from the store."""
        try:
            known_good = self.store.newest_known_good(self.target)
            quarantined = self.store.quarantined(self.target)
        except StoreError:
            return  # keep the last picture; the store's own metric reports the failure
        catalogue = [(q.image, "quarantined") for q in quarantined]
        if known_good is not None:
            catalogue.insert(0, (known_good.release.label, "known_good"))
        self.catalogue = catalogue

    def record(self, release: Release, keep: int) -> tuple[ReleaseRecord, bool] | None:
        """The release's record and whether it is quarantined; None when the store failed."""
        try:
            record, _new = self.store.record_release(release, keep=keep)
            quarantined = self.store.is_quarantined(self.target, release.image)
        except StoreError as err:
            log.error("target_record_release_failed", target=self.target, error=str(err))
            return None
        return record, quarantined

    def mark_known_good(self, release: Release) -> bool:
        try:
            self.store.mark_known_good(self.target, release.id)
        except StoreError as err:
            log.error("target_known_good_failed", target=self.target, error=str(err))
            return False
        self.refresh()
        self.audit(
            "known_good", f"release {release.label} passed its bake time", {"release": release.id}
        )
        return True

    def restore_target(self, current: Release | None, to: str | None) -> Release | None:
        """The release ``to`` names, else the newest known-good one that is not ``current``."""
        try:
            if to is not None:
                record = self.store.release(self.target, to)
            else:
                exclude = [current.id] if current is not None else []
                record = self.store.newest_known_good(self.target, excluding=exclude)
        except StoreError:
            return None
        return record.release if record is not None else None

    def restore_refusal(self, restore: Release | None) -> str | None:
        """An operator's ``to`` may not pick a release that was rolled back (docs/security.md):
        restoring it would roll back into a known-bad release, and quarantine the one running."""
        if restore is None:
            return None
        try:
            if not self.store.is_quarantined(self.target, restore.image):
                return None
        except StoreError:
            return "the quarantine cannot be read, so the release might be a known-bad one"
        return (
            f"release {restore.label} is quarantined; clear it first with "
            f"`watchdogd unquarantine {self.target} {restore.image}`"
        )

    def rollback_times(self, wall: float) -> list[float]:
        try:
            return self.store.recent_rollback_times(self.target, since=wall - HOUR)
        except StoreError:
            return []

    def quarantine(self, release: Release, incident: str) -> None:
        try:
            self.store.quarantine(
                self.target,
                release.image,
                f"rolled back by incident {incident}",
                incident_id=incident,
            )
        except StoreError as err:
            log.error("target_quarantine_failed", target=self.target, error=str(err))
            return
        self.refresh()
        self.audit(
            "quarantined",
            f"release {release.label} quarantined: rolled back by incident {incident}; "
            "deploying it again rolls it back at once",
            {"release": release.id, "image": release.image, "incident": incident},
        )

    def unquarantine(self, image: str) -> None:
        """Clear a quarantine: the release may be deployed again, and must bake again."""
        try:
            cleared = self.store.unquarantine(self.target, image)
        except StoreError as err:
            raise ControlRefused(503, f"the state store failed: {err}") from err
        if not cleared:
            raise ControlRefused(404, f"{image!r} is not quarantined for {self.target}")
        self.refresh()
        self.audit(
            "unquarantined", f"quarantine of {image} cleared by an operator", {"image": image}
        )
