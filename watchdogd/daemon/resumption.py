"""Picking up where the state left off: a target's state kept in Swarm restored, and the
incidents left open resumed. At start for every target; at a reload for the Swarm targets it
adds, which must start from what Swarm kept exactly as they would at start.

Restoring comes first: it fills an empty store (known-good, quarantine) and takes over an
incident whose owner died, which the resume then finishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog

from watchdogd.errors import StoreError
from watchdogd.playbook.plan import IncidentPlan
from watchdogd.store import Store
from watchdogd.watch.controller import TargetController

log = structlog.get_logger(__name__)


async def restore_mirrors(controllers: Mapping[str, TargetController]) -> None:
    """Each controller's mirror (Swarm targets) restores the state kept there."""
    mirrors = [c.mirror for c in controllers.values() if c.mirror is not None]
    await asyncio.gather(*(mirror.restore() for mirror in mirrors))


async def resume_open(
    store: Store, controllers: Mapping[str, TargetController], *, every_target: bool
) -> None:
    """Resume the open incidents of ``controllers``; with ``every_target`` (at start), an open
    incident of a target no longer configured is logged."""
    try:
        open_incidents = store.open_incidents()
    except StoreError as err:
        log.error("open_incidents_unreadable", error=str(err))
        return
    for record in open_incidents:
        controller = controllers.get(record.target)
        if controller is None:
            if every_target:
                log.warning("incident_target_unknown", target=record.target)
            continue
        plan = IncidentPlan(
            incident_id=record.id,
            target=record.target,
            trigger=record.trigger,
            bad_release=record.bad_release,
            restore_release=record.restore_release,
            steps=tuple(controller.steps),
            dry_run=record.dry_run,
            stop_timeout=controller.settings.stop_timeout,
        )
        log.warning("incident_resuming", target=record.target, incident=record.id)
        await controller.resume(plan)
