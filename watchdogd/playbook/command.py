"""``command`` (a local process) and ``exec`` (a command in the bad release's container).

Both fail on a non-zero exit with the tail of the output. A local process runs in its own
process group, killed whole when the step times out or the playbook is cancelled, with a clean
environment: ``PATH``, ``LANG``, the step's ``env:`` and the ``WATCHDOGD_*`` context, never the
daemon's secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from watchdogd.config.steps import CommandAction, ExecAction, Step
from watchdogd.errors import StepFailed, TargetError
from watchdogd.playbook.context import StepContext, incident_env, tail
from watchdogd.redact import child_environment

__all__ = ["run_command", "run_exec"]


async def run_command(step: Step, ctx: StepContext) -> str:
    spec = step.spec
    assert isinstance(spec, CommandAction)  # noqa: S101 - guaranteed by the dispatch table
    # Never the daemon's own environment: it holds the API token and the config's secrets.
    env = child_environment(spec.env, incident_env(ctx.plan))
    try:
        process = await asyncio.create_subprocess_exec(
            *spec.command,
            cwd=spec.cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as err:
        raise StepFailed("command", f"cannot start {spec.command[0]!r}: {err}") from err
    try:
        raw, _ = await process.communicate()
    except BaseException:
        # Timeout or cancellation: nothing of the command may outlive the step.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.shield(process.wait())
        raise
    output = raw.decode(errors="replace")
    if process.returncode != 0:
        raise StepFailed("command", f"exited with {process.returncode}: {tail(output)}")
    return f"exited with 0: {tail(output, lines=3, chars=500)}".rstrip(": ")


async def run_exec(step: Step, ctx: StepContext) -> str:
    spec = step.spec
    assert isinstance(spec, ExecAction)  # noqa: S101 - guaranteed by the dispatch table
    try:
        result = await ctx.driver.exec(
            spec.command,
            user=spec.user,
            workdir=spec.workdir,
            env={**spec.env, **incident_env(ctx.plan)},
            timeout=step.timeout,
        )
    except TargetError as err:
        raise StepFailed("exec", str(err)) from err
    if result.exit_code != 0:
        raise StepFailed("exec", f"exited with {result.exit_code}: {tail(result.output)}")
    return f"exited with 0: {tail(result.output, lines=3, chars=500)}".rstrip(": ")
