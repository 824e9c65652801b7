"""Pre-promotion checks: green, before any user request reaches it, must be healthy and pass
the target's own probe checks pointed at it directly.

"Pointed at green" means each ``http`` and ``auth_flow`` URL keeps its scheme, path and query,
and its host and port become green's endpoint. Checks that watch through a third party
(``scrape``, ``promql``) are not pre-checks: they cannot tell green from blue. The rule each
check is held to is ``core.deploy_plan.PreCheckTally``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

from watchdogd.config.schema import AuthFlowCheck, HttpCheck, TargetConfig
from watchdogd.config.traffic import PreChecks
from watchdogd.core.deploy_plan import PreCheckTally
from watchdogd.deploy.green import Endpoint
from watchdogd.sources.auth_flow import AuthFlowProbe
from watchdogd.sources.http import HttpProbe
from watchdogd.sources.probe_client import ProbeClient

Progress = Callable[[str], Awaitable[None]]
HealthOf = Callable[[], Awaitable[str]]


def pointed_at(url: str, endpoint: Endpoint) -> str:
    parts = urlsplit(url)
    host = f"[{endpoint.address}]" if ":" in endpoint.address else endpoint.address
    return urlunsplit(parts._replace(netloc=f"{host}:{endpoint.port}"))


def green_checks(
    target: TargetConfig, settings: PreChecks, endpoint: Endpoint
) -> list[HttpCheck | AuthFlowCheck]:
    """The target's probe checks, rewritten to reach green directly."""
    chosen: list[HttpCheck | AuthFlowCheck] = []
    for check in target.checks:
        if settings.checks is not None and check.name not in settings.checks:
            continue
        if isinstance(check, HttpCheck):
            chosen.append(replace(check, url=pointed_at(check.url, endpoint)))
        elif isinstance(check, AuthFlowCheck):
            steps = [replace(s, url=pointed_at(s.url, endpoint)) for s in check.steps]
            chosen.append(replace(check, steps=steps))
    return chosen


class _Tap:
    """A ``SampleSink`` that hands each probe result to a tally."""

    def __init__(self, tally: PreCheckTally) -> None:
        self.tally = tally

    def probe_started(self, now: float) -> int:
        return 0

    def probe(
        self,
        now: float,
        ok: bool,
        latency: float | None,
        detail: str = "",
        token: int | None = None,
    ) -> None:
        self.tally.add(ok, latency, detail)

    def counts(self, now: float, requests: int, errors: int) -> None:
        return None

    def latency(self, now: float, seconds: float, count: int = 1, *, above: bool = False) -> None:
        return None

    def value(self, now: float, value: float) -> None:
        return None

    def unknown(self, now: float, reason: str, token: int | None = None) -> None:
        self.tally.add(False, None, reason)


async def wait_healthy(health: HealthOf, deadline: float, progress: Progress) -> str | None:
    """None once green is healthy (or runs and has no healthcheck), else why not."""
    await progress("waiting for green to be healthy")
    while True:
        state = await health()
        if state in ("healthy", "none"):
            return None
        if state in ("unhealthy", "stopped"):
            return f"green is {state} (Docker)"
        if time.monotonic() >= deadline:
            return f"green was not healthy in time (Docker says {state})"
        await asyncio.sleep(0.25)


async def run_prechecks(
    target: TargetConfig,
    settings: PreChecks,
    endpoint: Endpoint,
    client: ProbeClient,
    *,
    secrets: frozenset[str],
    health: HealthOf,
    progress: Progress,
) -> tuple[bool, str]:
    """Run every pre-check until each passes or one fails; ``(passed, summary)``."""
    deadline = time.monotonic() + settings.timeout
    problem = await wait_healthy(health, deadline, progress)
    if problem is not None:
        return False, problem
    checks = green_checks(target, settings, endpoint)
    if not checks:
        return True, "healthy; no http or auth_flow check to run against green"
    tallies = [PreCheckTally(c.name, settings.samples, settings.max_latency) for c in checks]
    probes = [_probe(c, _Tap(t), client, secrets) for c, t in zip(checks, tallies, strict=True)]
    await progress(f"pre-checks against green at {endpoint}: " + ", ".join(c.name for c in checks))
    while True:
        pending = [(p, t) for p, t in zip(probes, tallies, strict=True) if not t.passed]
        await asyncio.gather(*(p.probe_once() for p, _t in pending))
        failed = [t for t in tallies if t.failed]
        if failed:
            return False, "pre-checks failed: " + "; ".join(t.summary() for t in failed)
        if all(t.passed for t in tallies):
            return True, "pre-checks passed: " + "; ".join(t.summary() for t in tallies)
        if await health() in ("unhealthy", "stopped"):
            return False, "green turned unhealthy during the pre-checks"
        if time.monotonic() >= deadline:
            late = [t for t in tallies if not t.passed]
            return False, "pre-checks did not pass in time: " + "; ".join(t.summary() for t in late)
        await asyncio.sleep(settings.interval)


def _probe(
    check: HttpCheck | AuthFlowCheck, tap: _Tap, client: ProbeClient, secrets: frozenset[str]
) -> HttpProbe | AuthFlowProbe:
    if isinstance(check, HttpCheck):
        return HttpProbe(check, tap, client, secrets=secrets)
    return AuthFlowProbe(check, tap, client, secrets=secrets)
