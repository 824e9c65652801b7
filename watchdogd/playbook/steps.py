"""The step executors by action name, and the one call the runner makes: ``execute``.

An executor runs one attempt of one step and returns a short detail for the journal, or
raises ``StepFailed``. Timeouts, retries and journaling are the runner's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from watchdogd.config.steps import Step
from watchdogd.playbook.command import run_command, run_exec
from watchdogd.playbook.context import StepContext
from watchdogd.playbook.http_call import run_http
from watchdogd.playbook.notify import run_notify
from watchdogd.playbook.rollback import run_rollback, run_wait_healthy

__all__ = ["EXECUTORS", "StepExecutor", "execute"]

StepExecutor = Callable[[Step, StepContext], Awaitable[str]]


# psycopg and redis add about 15 MB to the daemon's RSS (benchmarks/bench_load.py, idle):
# load them only when a playbook really runs a sql or redis_invalidate step.
async def run_sql(step: Step, ctx: StepContext) -> str:
    from watchdogd.playbook.sql import run_sql as run  # noqa: PLC0415 - see above

    return await run(step, ctx)


async def run_redis_invalidate(step: Step, ctx: StepContext) -> str:
    from watchdogd.playbook.redis_keys import run_redis_invalidate as run  # noqa: PLC0415

    return await run(step, ctx)


EXECUTORS: dict[str, StepExecutor] = {
    "notify": run_notify,
    "exec": run_exec,
    "command": run_command,
    "sql": run_sql,
    "redis_invalidate": run_redis_invalidate,
    "http": run_http,
    "rollback": run_rollback,
    "wait_healthy": run_wait_healthy,
}


async def execute(step: Step, ctx: StepContext) -> str:
    return await EXECUTORS[step.action](step, ctx)
