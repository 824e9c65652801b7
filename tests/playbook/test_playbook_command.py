"""The ``command`` step runs a real local process: env, cwd, exit codes, timeouts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playbook_fakes import FakeDriver, RecordingSleep, plan, runner, step

from watchdogd.store import IncidentState, StepStatus, Store


def _gone(pid: int) -> bool:
    """True when ``pid`` has exited (gone, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


class TestCommand:
    async def test_env_and_cwd(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep, tmp_path: Path
    ) -> None:
        """The process runs in ``cwd`` with its env plus the WATCHDOGD_* variables."""
        script = 'echo "$WATCHDOGD_TARGET $WATCHDOGD_INCIDENT $WATCHDOGD_BAD_IMAGE '
        script += '$WATCHDOGD_RESTORE_IMAGE $EXTRA"; pwd'
        command = {"command": ["sh", "-c", script], "cwd": str(tmp_path), "env": {"EXTRA": "x"}}
        incident = plan([step(command=command)])
        outcome = await runner(store, driver, sleep).run(incident)
        assert outcome.state is IncidentState.SUCCEEDED
        expected = f"api {incident.incident_id} sha256:bad sha256:good x\n{tmp_path}"
        assert outcome.steps[0].detail == f"exited with 0: {expected}"

    async def test_non_zero_exit_fails_with_output(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """A non-zero exit fails the step; the end of the output says why."""
        script = "for i in $(seq 1 50); do echo line $i; done; echo cache purge failed >&2; exit 4"
        outcome = await runner(store, driver, sleep).run(
            plan([step(command={"command": ["sh", "-c", script]})])
        )
        result = outcome.steps[0]
        assert result.status is StepStatus.FAILED
        assert result.detail.startswith("exited with 4: line 32\n")
        assert result.detail.endswith("line 50\ncache purge failed")

    async def test_missing_program(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep
    ) -> None:
        """A program that does not exist fails the step with a clear reason."""
        outcome = await runner(store, driver, sleep).run(
            plan([step(command={"command": ["/nonexistent/purge"]})])
        )
        assert outcome.steps[0].detail.startswith("cannot start '/nonexistent/purge'")

    async def test_timeout_kills_the_process_group(
        self, store: Store, driver: FakeDriver, sleep: RecordingSleep, tmp_path: Path
    ) -> None:
        """On timeout the command and its children are killed; nothing outlives the step."""
        pidfile = tmp_path / "child.pid"
        script = f"sleep 300 & echo $! > {pidfile}; wait"
        outcome = await runner(store, driver, sleep).run(
            plan([step(command={"command": ["sh", "-c", script]}, timeout="1s")])
        )
        assert outcome.steps[0].detail == "timed out after 1 s"
        child = int(pidfile.read_text())
        for _ in range(1000):  # SIGKILL was sent; give the kernel up to 10 s to finish it
            if _gone(child):
                break
            await asyncio.sleep(0.01)
        assert _gone(child)
