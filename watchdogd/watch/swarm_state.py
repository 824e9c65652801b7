"""Known-good releases, quarantine and the incident journal of a Swarm target, kept in Swarm.

The local SQLite store is the working copy; this copy lives in the swarm's replicated store
(Raft, on every manager), so it survives the loss of the node watchdogd runs on, and it is how
two watchdogd instances watching one service agree that only one of them rolls it back.

Where: one Swarm config per service, ``watchdogd-state.<service>``, whose labels hold the
state as JSON (``watchdogd.state``). A config's data cannot change but its labels can, under
the config's ``version``: every write reads the config, edits the document and posts it with
the version it read; a conflict means another instance wrote in between, so it re-reads and
edits again. Not service labels: every update of a service, even of its labels only, makes the
current spec the ``PreviousSpec`` (and resets ``UpdateStatus``), which would take away the
``rollback=previous`` the driver relies on.

The document (``swarm_document``)::

    known_good  newest first, 5 releases with what it takes to restore them
    quarantine  images rolled back, with the incident that did it
    incident    the running incident: its plan, its journal, the owner and the owner's lease
    history     the last 10 incidents that ended: id, owner, bad release, outcome

Who handles an incident (``claim``): the instance that writes it into ``incident`` first. The
claim is refused while another instance's incident runs with a live lease, when the service
no longer runs the bad release (somebody already changed it), and, for automatic triggers,
when an incident for the same bad release failed within the hour (that instance froze the
target; an operator decides). The owner renews its lease every few seconds and with every
journal copy; an owner that stops renewing for ``LEASE`` seconds (killed, node lost) gives
the incident up: at start, a new instance waits out the lease, takes the incident over and
resumes it from the copied journal, even with an empty ``state_dir``. An owner that finds its
incident taken over stops before the next step (``ClaimLost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from watchdogd.config.steps import Step
from watchdogd.engine.swarm_api import SwarmApi
from watchdogd.errors import (
    ClaimLost,
    MirrorWriteRefused,
    ObjectExists,
    StoreError,
    TargetError,
    VersionConflict,
)
from watchdogd.model import Release
from watchdogd.playbook.plan import IncidentPlan
from watchdogd.store import IncidentState, StepStatus, Store
from watchdogd.targets.swarm import SwarmDriver
from watchdogd.watch.swarm_document import (
    CONFIG_DATA,
    SERVICE_LABEL,
    STATE_LABEL,
    Document,
    config_name,
    ended_entry,
    incident_entry,
    journal_copy,
    release_from,
    trigger_from,
)

__all__ = ["LEASE", "SwarmStateMirror"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

LEASE = 10.0
RENEW_EVERY = 3.0
CAS_ATTEMPTS = 8
FAILED_BLOCKS_FOR = 3600.0


class SwarmStateMirror:
    """The ``StateMirror`` of one Swarm target (see ``watchdogd.watch.mirror``)."""

    def __init__(
        self,
        target: str,
        driver: SwarmDriver,
        store: Store,
        *,
        lease: float = LEASE,
        renew_every: float = RENEW_EVERY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.driver = driver
        self.store = store
        self.api = SwarmApi(driver.engine)
        self.name = config_name(driver.service)
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
        self.lease = lease
        self.renew_every = renew_every
        self._clock = clock
        self._incident: str | None = None
        self._lost = False
        self._renewal: asyncio.Task[None] | None = None

    # --- reading and writing the document ------------------------------------------------------

    async def read(self) -> Document:
        config = await self.api.config(self.name)
        return Document() if config is None else Document.from_config(config)

    async def _change(self, what: str, edit: Callable[[Document], T]) -> T:
        """Apply ``edit`` to the document under the config's version; re-read on conflict."""
        for _ in range(CAS_ATTEMPTS):
            config = await self.api.config(self.name)
            document = Document() if config is None else Document.from_config(config)
            before = document.dump() if config is not None else None
            result = edit(document)
            labels = {SERVICE_LABEL: self.driver.service, STATE_LABEL: document.dump()}
            try:
                if config is None:
                    await self.api.create_config(self.name, CONFIG_DATA, labels)
                elif document.dump() != before:
                    await self.api.update_config_labels(config, labels)
            except (VersionConflict, ObjectExists):
                continue
            return result
        raise TargetError(f"{what}: config {self.name} kept changing under us")

    # --- StateMirror ---------------------------------------------------------------------------

    async def known_good(self, release: Release) -> None:
        def edit(doc: Document) -> None:
            doc.add_known_good(release, self._clock())

        try:
            await self._change("record a known-good release", edit)
        except TargetError as err:
            log.error("swarm_known_good_not_kept", target=self.target, error=str(err))

    async def claim(self, plan: IncidentPlan, *, manual: bool) -> str | None:
        bad = plan.bad_release
        try:
            running = await self.driver.current()
        except TargetError as err:
            return f"cannot read service {self.driver.service}: {err}"
        if bad is not None and (running is None or running.id != bad.id):
            now_label = running.label if running is not None else "nothing"
            return (
                f"service {self.driver.service} no longer runs {bad.label} (it runs {now_label}): "
                "another watchdogd or an operator changed it"
            )

        def edit(doc: Document) -> None:
            now = self._clock()
            held = doc.incident
            if held is not None and held["id"] != plan.incident_id:
                if held["lease_until"] > now:
                    raise MirrorWriteRefused(
                        f"incident {held['id']} is being handled by watchdogd {held['owner']}"
                    )
                doc.ended(ended_entry(held, "aborted", now, f"lease of {held['owner']} ran out"))
            for past in doc.history:
                recent = now - float(past.get("ended_at") or 0) < FAILED_BLOCKS_FOR
                same = bad is not None and past.get("bad_release") == bad.id
                if not manual and same and recent and past.get("state") == "failed":
                    raise MirrorWriteRefused(
                        f"incident {past['id']} for {bad.label if bad else ''} failed on "
                        f"watchdogd {past['owner']}; an operator decides"
                    )
            doc.incident = incident_entry(plan, self.owner, now + self.lease)

        try:
            await self._change("claim the incident", edit)
        except MirrorWriteRefused as refused:
            return str(refused)
        except TargetError as err:
            return f"cannot claim the incident in swarm: {err}"
        self._hold(plan.incident_id)
        log.info("swarm_incident_claimed", target=self.target, incident=plan.incident_id)
        return None

    async def before_step(self, index: int, step: Step) -> None:
        incident = self._incident
        if incident is None:
            return
        if self._lost:
            raise ClaimLost(f"incident {incident} was taken over by another watchdogd")
        try:
            await self._renew(incident, journal_copy(self.store.journal_for(incident)))
        except ClaimLost:
            self._lost = True
            raise
        except (TargetError, StoreError) as err:
            log.warning("swarm_journal_not_copied", target=self.target, step=index, error=str(err))

    async def finished(self, plan: IncidentPlan, *, succeeded: bool, detail: str) -> None:
        if self._incident != plan.incident_id:
            return
        self._release_hold()
        bad, good = plan.bad_release, plan.restore_release
        state = "succeeded" if succeeded else "failed"

        def edit(doc: Document) -> None:
            now = self._clock()
            held = doc.incident
            if held is None or held["id"] != plan.incident_id or held["owner"] != self.owner:
                return  # taken over: the new owner records the end
            doc.incident = None
            doc.ended(ended_entry(held, state, now, detail))
            if succeeded and bad is not None and good is not None and bad.image != good.image:
                doc.add_quarantine(bad.image, plan.incident_id, now)

        try:
            await self._change("record the end of the incident", edit)
        except TargetError as err:
            log.error("swarm_incident_end_not_kept", target=self.target, error=str(err))

    # --- the lease -----------------------------------------------------------------------------

    def _hold(self, incident: str) -> None:
        self._release_hold()
        self._incident, self._lost = incident, False
        self._renewal = asyncio.create_task(self._renew_loop(incident), name=f"lease:{self.target}")

    def _release_hold(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
        self._renewal, self._incident = None, None

    async def _renew(self, incident: str, journal: list[dict[str, Any]] | None = None) -> None:
        def edit(doc: Document) -> None:
            held = doc.incident
            if held is None or held["id"] != incident or held["owner"] != self.owner:
                owner = held["owner"] if held is not None else "nobody"
                raise ClaimLost(f"incident {incident} is now held by {owner}")
            held["lease_until"] = self._clock() + self.lease
            if journal is not None:
                held["journal"] = journal

        await self._change("renew the incident lease", edit)

    async def _renew_loop(self, incident: str) -> None:
        while True:
            await asyncio.sleep(self.renew_every)
            try:
                await self._renew(incident)
            except ClaimLost as err:
                self._lost = True
                log.error("swarm_incident_lost", target=self.target, error=str(err))
                return
            except TargetError as err:
                log.warning("swarm_lease_not_renewed", target=self.target, error=str(err))

    # --- start-up ------------------------------------------------------------------------------

    async def restore(self) -> None:
        try:
            doc = await self.read()
        except TargetError as err:
            log.error("swarm_state_read_failed", target=self.target, error=str(err))
            return
        try:
            if not self.store.releases(self.target):
                self._import(doc)
            await self._adopt(doc)
        except StoreError as err:
            log.error("swarm_state_restore_failed", target=self.target, error=str(err))

    def _import(self, doc: Document) -> None:
        """An empty store (a new node, a lost disk): start from what the swarm kept."""
        for entry in reversed(doc.known_good):  # oldest first: the newest is stamped last
            release = release_from(entry["release"], self.target)
            assert release is not None  # noqa: S101 - known-good entries always hold one
            self.store.record_release(release)
            self.store.mark_known_good(self.target, release.id)
        for entry in reversed(doc.quarantine):
            self.store.quarantine(
                self.target, entry["image"], entry["reason"], incident_id=entry.get("incident_id")
            )
        if doc.known_good or doc.quarantine:
            log.warning(
                "swarm_state_restored",
                target=self.target,
                known_good=len(doc.known_good),
                quarantined=len(doc.quarantine),
            )

    async def _adopt(self, doc: Document) -> None:
        """Take over the incident left running in swarm; end local ones that ended elsewhere."""
        held = doc.incident
        for record in self.store.open_incidents(self.target):
            if held is None or held["id"] != record.id:
                past = next((h for h in doc.history if h["id"] == record.id), None)
                why = (
                    f"ended on watchdogd {past['owner']} ({past['state']})"
                    if past
                    else "not in the swarm state: another watchdogd has taken the target over"
                )
                self.store.finish_incident(record.id, IncidentState.ABORTED, why)
                log.warning(
                    "local_incident_not_resumed", target=self.target, incident=record.id, why=why
                )
        if held is None:
            return
        if held["owner"] != self.owner:
            wait = held["lease_until"] - self._clock()
            if wait > 0:
                log.warning(
                    "swarm_waiting_for_lease",
                    target=self.target,
                    incident=held["id"],
                    owner=held["owner"],
                    seconds=round(wait, 1),
                )
                await asyncio.sleep(min(wait, self.lease) + 0.2)
            try:
                await self._change(
                    "take the incident over", lambda d: self._take_over(d, held["id"])
                )
            except (MirrorWriteRefused, TargetError) as err:
                log.warning(
                    "swarm_incident_left_to_owner",
                    target=self.target,
                    incident=held["id"],
                    why=str(err),
                )
                if self.store.incident(held["id"]) is not None:
                    self.store.finish_incident(
                        held["id"], IncidentState.ABORTED, f"left to another watchdogd: {err}"
                    )
                return
        if self.store.incident(held["id"]) is None:
            self._import_incident(held)
        self._hold(held["id"])
        log.warning(
            "swarm_incident_taken_over",
            target=self.target,
            incident=held["id"],
            owner=held["owner"],
        )

    def _take_over(self, doc: Document, incident: str) -> None:
        held, now = doc.incident, self._clock()
        if held is None or held["id"] != incident:
            raise MirrorWriteRefused("it ended meanwhile")
        if held["owner"] != self.owner and held["lease_until"] > now:
            raise MirrorWriteRefused(f"its owner {held['owner']} is alive (renewed its lease)")
        held["owner"], held["lease_until"] = self.owner, now + self.lease

    def _import_incident(self, held: dict[str, Any]) -> None:
        self.store.create_incident(
            incident_id=held["id"],
            target=self.target,
            trigger=trigger_from(held["trigger"]),
            bad_release=release_from(held.get("bad_release"), self.target),
            restore_release=release_from(held.get("restore_release"), self.target),
            dry_run=bool(held.get("dry_run")),
            actions=held.get("actions") or [],
        )
        for entry in held.get("journal") or []:
            status, index = StepStatus(entry["status"]), int(entry["step_index"])
            if status is StepStatus.SKIPPED:
                self.store.step_skipped(held["id"], index, entry["action"], entry["detail"])
                continue
            self.store.step_started(held["id"], index, entry["action"])
            if status.final:
                self.store.step_finished(held["id"], index, status, entry["detail"])

    async def close(self) -> None:
        """Stop renewing (at shutdown): an incident left running is taken over after the lease."""
        task, self._renewal = self._renewal, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
