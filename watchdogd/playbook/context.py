"""What a step executor gets besides its own config: the incident, the target's driver, the
notifiers, the daemon's health check, an HTTP session, and the results so far."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp

from watchdogd.config.schema import Notifier
from watchdogd.playbook.plan import IncidentPlan, StepResult
from watchdogd.targets.base import TargetDriver

__all__ = ["HealthCheck", "StepContext", "incident_env", "runtime_health", "tail"]

# Called as ``health_check(since, min_samples)``: True healthy, False unhealthy, None no
# opinion (yet), judged only on evidence from ``since`` on (``StepContext.monotonic``'s clock,
# which the sources stamp their samples with). The daemon's combines the runtime's health with
# at least ``min_samples`` fresh samples of each probe (``watch.evidence``).
HealthCheck = Callable[[float, int], Awaitable[bool | None]]


@dataclass
class StepContext:
    plan: IncidentPlan
    driver: TargetDriver
    notifiers: Mapping[str, Notifier]
    health_check: HealthCheck
    http: aiohttp.ClientSession
    started_at: float  # wall clock, when the incident opened (survives a restart)
    results: list[StepResult] = field(default_factory=list)
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    health_poll_interval: float = 0.5

    @property
    def duration(self) -> float:
        return max(0.0, self.clock() - self.started_at)


def incident_env(plan: IncidentPlan) -> dict[str, str]:
    """Variables every ``command`` and ``exec`` step sees."""
    return {
        "WATCHDOGD_TARGET": plan.target,
        "WATCHDOGD_INCIDENT": plan.incident_id,
        "WATCHDOGD_BAD_IMAGE": plan.bad_release.image if plan.bad_release else "",
        "WATCHDOGD_RESTORE_IMAGE": plan.restore_release.image if plan.restore_release else "",
    }


def tail(text: str, lines: int = 20, chars: int = 2000) -> str:
    """The end of a process's output, for a failure message."""
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept if len(kept) <= chars else "…" + kept[-chars:]


def runtime_health(driver: TargetDriver) -> HealthCheck:
    """Without the daemon's judge: the runtime's own health (a Docker HEALTHCHECK is always
    about the container that runs now, so it is evidence gathered after the restore)."""

    async def health(_since: float, _min_samples: int) -> bool | None:
        return await driver.healthy()

    return health
