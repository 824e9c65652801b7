"""``container_health`` of a Swarm target: the service's tasks, as the manager sees them.

Container events only show the containers of this node, and a deploy stops the old release's
containers, which an event watcher cannot tell from a crash. Swarm's task list knows both:
each task carries the template it was made from, so only tasks of the *current* spec are
judged, on every node. Per poll:

* a task of the current spec that runs is one ok sample. A task with a HEALTHCHECK stays
  ``starting`` until its container is healthy, and Swarm ends a task whose container turns
  unhealthy, so "running" includes "healthy";
* a task of the current spec that ended by itself since the last look (``failed``,
  ``rejected``, ``orphaned``, or ``complete``: a service's task is not meant to finish) is one
  failed sample, once. ``shutdown`` is Swarm stopping it on purpose (update, scale-down);
* an update or rollback that Swarm paused (its ``FailureAction``) is one failed sample;
* tasks still starting, and every task of another spec, give nothing.

Failures come after the ok samples of the same poll, so the newest sample says whether any
replica failed. Tasks that had ended before the first poll are history, not news. A manager
that cannot be asked is ``unknown``, never a failure. When the spec changes, ``on_change``
runs first, so the daemon sees the new release before it sees its samples.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from watchdogd.engine.swarm_api import SwarmApi
from watchdogd.engine.swarm_spec import PAUSED, image_of, runs_spec, spec_fingerprint
from watchdogd.errors import TargetError
from watchdogd.sources.base import SampleSink
from watchdogd.sources.schedule import Clock, StateChangeLog, run_every

__all__ = ["ENDED_BY_ITSELF", "SwarmTaskSource", "judge"]

ENDED_BY_ITSELF = frozenset({"failed", "rejected", "orphaned", "complete"})

Outcome = tuple[bool, str]


class SwarmService(Protocol):
    """The service to watch and the API to ask (the swarm driver is one)."""

    @property
    def service(self) -> str: ...
    @property
    def api(self) -> SwarmApi: ...


def judge(service: dict[str, Any], tasks: list[dict[str, Any]], seen: set[str]) -> list[Outcome]:
    """The samples one look at ``service`` and its ``tasks`` gives; ``seen`` holds the ids of
    ended tasks already reported (updated in place)."""
    spec, name = service["Spec"], service["Spec"].get("Name", service.get("ID"))
    mode = spec.get("Mode") or {}
    # A job's tasks are meant to finish (Swarm 20.10's replicated and global jobs).
    job = bool({"ReplicatedJob", "GlobalJob"} & set(mode))
    ended = ENDED_BY_ITSELF - {"complete"} if job else ENDED_BY_ITSELF
    ok: list[Outcome] = []
    failed: list[Outcome] = []
    for task in tasks:
        if not runs_spec(task, spec):
            continue
        status = task.get("Status") or {}
        state, task_id = str(status.get("State") or ""), str(task.get("ID"))
        label = f"{name}.{task.get('Slot') or task.get('NodeID', '')} ({task_id[:12]})"
        if state == "running" and task.get("DesiredState") == "running":
            ok.append((True, ""))
        elif state in ended and task_id not in seen:
            seen.add(task_id)
            reason = status.get("Err") or status.get("Message") or ""
            failed.append((False, f"{label}: {state}{f', {reason}' if reason else ''}"))
    update = service.get("UpdateStatus") or {}
    if update.get("State") in PAUSED:
        failed.append((False, f"{name}: {update['State']}: {update.get('Message', '')}"))
    return ok + failed


class SwarmTaskSource:
    """Polls one service's tasks every ``interval`` seconds into ``sink``."""

    def __init__(
        self,
        driver: SwarmService,
        sink: SampleSink,
        interval: float,
        *,
        on_change: Callable[[], Awaitable[None]] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.driver = driver
        self.sink = sink
        self.interval = interval
        self.on_change = on_change
        self._clock = clock
        self._seen: set[str] | None = None  # None until the first look: history is not news
        self._release: tuple[str, str] | None = None
        self._manager = StateChangeLog(
            "swarm_manager_unreachable", "swarm_manager_back", service=driver.service
        )

    async def run(self) -> None:
        await run_every(self.interval, self.poll_once, name=f"swarm:{self.driver.service}")

    async def poll_once(self, _due: float = 0.0) -> None:
        try:
            service = await self.driver.api.service(self.driver.service)
            tasks = [] if service is None else await self.driver.api.tasks(str(service["ID"]))
        except TargetError as err:
            self._manager.failing(str(err))
            self.sink.unknown(self._clock(), f"swarm manager unreachable: {err}")
            return
        self._manager.ok()
        if service is None:
            self.sink.probe(self._clock(), False, None, f"no swarm service {self.driver.service}")
            return
        release = (image_of(service["Spec"]), spec_fingerprint(service["Spec"]))
        if release != self._release:
            first, self._release = self._release is None, release
            if not first and self.on_change is not None:
                await self.on_change()
        if self._seen is None:
            self._seen = {
                str(t.get("ID"))
                for t in tasks
                if (t.get("Status") or {}).get("State") in ENDED_BY_ITSELF
            }
        outcomes = judge(service, tasks, self._seen)
        self._seen &= {str(t.get("ID")) for t in tasks}  # Swarm prunes its task history
        now = self._clock()
        for ok, detail in outcomes:
            self.sink.probe(now, ok, None, detail)
