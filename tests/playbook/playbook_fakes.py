"""Hand-written fakes for the playbook tests: a sleep that only records, builders for steps
and plans, and the shared ``FakeDriver`` (``tests.support.fakes``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tests.support.fakes import FakeDriver
from watchdogd.config.steps import Step
from watchdogd.config.validation import parse
from watchdogd.model import Release, Trigger, TriggerKind
from watchdogd.playbook import IncidentPlan, PlaybookRunner
from watchdogd.store import StepStatus, Store

BAD = Release(target="api", image="sha256:bad", config_hash="c2", image_ref="api:v2")
GOOD = Release(
    target="api", image="sha256:good", config_hash="c1", image_ref="api:v1", spec={"Id": "x"}
)
TRIGGER = Trigger(
    kind=TriggerKind.GATE,
    name="probe:error_rate",
    reason="error rate 12.0% > 1.0% over 240 requests",
    numbers={"errors": 29, "requests": 240, "ratio": 0.12},
)


class RecordingSleep:
    """Stands in for ``asyncio.sleep`` in the retry loop: records the backoff, waits not."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def step(**data: Any) -> Step:
    return parse(Step, data)


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
