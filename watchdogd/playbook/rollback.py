"""``rollback`` (the driver puts the restore release back) and ``wait_healthy``.

``restore`` is idempotent by the driver's contract, so a rollback that was in flight at a crash
is simply run again: it converges on the same release and is the same rollback, not a second
one.
"""

from __future__ import annotations

import asyncio

from watchdogd.config.steps import RollbackAction, Step, WaitHealthyAction
from watchdogd.errors import StepFailed, TargetError, WatchdogError
from watchdogd.playbook.context import StepContext

__all__ = ["run_rollback", "run_wait_healthy", "wait_healthy_timeout"]


async def run_rollback(step: Step, ctx: StepContext) -> str:
    spec = step.spec
    assert isinstance(spec, RollbackAction)  # noqa: S101 - guaranteed by the dispatch table
    release = ctx.plan.restore_release
    if release is None:
        raise StepFailed("rollback", "no known-good release to restore")
    stop_timeout = spec.stop_timeout if spec.stop_timeout is not None else ctx.plan.stop_timeout
    try:
        await ctx.driver.restore(release, stop_timeout)
    except TargetError as err:
        raise StepFailed("rollback", str(err)) from err
    return f"restored {release.label} ({release.id})"


def wait_healthy_timeout(step: Step) -> float:
    """``wait_healthy.timeout`` is the deadline; the step's own ``timeout`` never cuts it short."""
    spec = step.spec
    assert isinstance(spec, WaitHealthyAction)  # noqa: S101 - guaranteed by the caller
    return max(step.timeout, spec.timeout + 1.0)


async def run_wait_healthy(step: Step, ctx: StepContext) -> str:
    """Poll the daemon's health check until it says healthy. "No opinion" until the deadline
    fails too: a rollback nobody can see working is not reported as a success. Only evidence
    gathered from this step's start on counts: samples of the bad release, taken before the
    restore, say nothing about the restored one."""
    spec = step.spec
    assert isinstance(spec, WaitHealthyAction)  # noqa: S101 - guaranteed by the dispatch table
    since = ctx.monotonic()
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + spec.timeout
    last = "no health signal yet"
    while True:
        try:
            healthy = await ctx.health_check(since, spec.min_samples)
        except WatchdogError as err:
            healthy, last = None, f"health unknown: {err}"
        else:
            last = {True: "healthy", False: "unhealthy", None: "health unknown"}[healthy]
        if healthy:
            return f"healthy after {loop.time() - start:.1f} s"
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise StepFailed("wait_healthy", f"not healthy within {spec.timeout:g} s ({last})")
        await asyncio.sleep(min(ctx.health_poll_interval, remaining))
