"""Hand-written fakes for the playbook tests: a target driver, a sleep that only records,
and builders for steps and plans."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from watchdogd.config.schema import Step
from watchdogd.errors import TargetError
from watchdogd.model import Release, Trigger
from watchdogd.playbook import IncidentPlan, PlaybookRunner
from watchdogd.store import StepStatus, Store
from watchdogd.targets.base import ExecResult

BAD = Release(target="api", image="sha256:bad", config_hash="c2", image_ref="api:v2")
GOOD = Release(
    target="api", image="sha256:good", config_hash="c1", image_ref="api:v1", spec={"Id": "x"}
)
TRIGGER = Trigger(
    kind="gate",
    name="probe:error_rate",
    reason="error rate 12.0% > 1.0% over 240 requests",
    numbers={"errors": 29, "requests": 240, "ratio": 0.12},
)


class FakeDriver:
    """Records every call. ``restore_failures``/``exec_failures`` make the next calls fail;
    ``hang_restore_after_acting`` makes ``restore`` take effect and then never return (a
    crash mid-step, after the side effect)."""

    target = "api"

    def __init__(self) -> None:
        self.running: Release | None = BAD
        self.restores: list[tuple[Release, float]] = []
        self.execs: list[dict[str, Any]] = []
        self.restore_failures = 0
        self.exec_failures = 0
        self.exec_exit_code = 0
        self.hang_restore_after_acting = False
        self.hang_exec = False
        self.health: bool | None = True
        self.restore_hung = asyncio.Event()
        self.exec_called = asyncio.Event()

    async def current(self) -> Release | None:
        return self.running

    async def restore(self, release: Release, stop_timeout: float) -> None:
        self.restores.append((release, stop_timeout))
        if self.restore_failures:
            self.restore_failures -= 1
            raise TargetError("engine refused the container")
        self.running = release
        if self.hang_restore_after_acting:
            self.restore_hung.set()
            await asyncio.Event().wait()

    async def healthy(self) -> bool | None:
        return self.health

    async def exec(
        self,
        command: Sequence[str],
        *,
        user: str | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        self.execs.append({"command": list(command), "user": user, "env": env or {}})
        self.exec_called.set()
        if self.hang_exec:
            await asyncio.Event().wait()
        if self.exec_failures:
            self.exec_failures -= 1
            return ExecResult(3, "line 1\nmigration 0042 failed: relation missing\n")
        return ExecResult(self.exec_exit_code, "downgraded to 0041\n")


class RecordingSleep:
    """Stands in for ``asyncio.sleep`` in the retry loop: records the backoff, waits not."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def step(**data: Any) -> Step:
    return Step.model_validate(data)


def plan(
    steps: Sequence[Step], *, dry_run: bool = False, restore: Release | None = GOOD
) -> IncidentPlan:
    return IncidentPlan.new(
        target="api",
        trigger=TRIGGER,
        bad_release=BAD,
        restore_release=restore,
        steps=steps,
        dry_run=dry_run,
        stop_timeout=7.0,
    )


class Crash:
    """A ``before_step`` hook that parks the runner at step ``index`` (after its ``started``
    row is committed) until the test cancels the task: a SIGKILL as the journal sees it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.reached = asyncio.Event()

    async def __call__(self, index: int, _step: Step) -> None:
        if index == self.index:
            self.reached.set()
            await asyncio.Event().wait()


def runner(
    store: Store, driver: FakeDriver, sleep: RecordingSleep, **kwargs: Any
) -> PlaybookRunner:
    """A runner whose backoff only records and whose health polls do not dawdle."""
    return PlaybookRunner(store, driver, sleep=sleep, health_poll_interval=0.001, **kwargs)


def statuses(store: Store, incident_id: str) -> list[tuple[str, StepStatus, int]]:
    """The journal as (action, status, attempt) per step."""
    return [(e.action, e.status, e.attempt) for e in store.journal_for(incident_id)]
