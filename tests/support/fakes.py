"""Hand-written fakes shared by the unit tests: a target driver that records every call.

Fakes only where a unit test needs plain values; everything a user runs for real (Docker,
HAProxy, Prometheus, ...) is tested against the real thing elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from watchdogd.errors import TargetError
from watchdogd.model import ExecResult, Release, Starts

__all__ = ["FakeDriver"]


class FakeDriver:
    """Records every call. ``restore_failures``/``exec_failures`` make the next calls fail;
    ``hang_restore_after_acting`` makes ``restore`` take effect and then never return (a
    crash mid-step, after the side effect)."""

    def __init__(self, running: Release | None, target: str = "api") -> None:
        self.target = target
        self.running = running
        self.restores: list[tuple[Release, float]] = []
        self.execs: list[dict[str, Any]] = []
        self.restore_failures = 0
        self.exec_failures = 0
        self.exec_exit_code = 0
        self.hang_restore_after_acting = False
        self.hang_exec = False
        self.health: bool | None = True
        self.started: Starts | None = None  # what starts() reports
        self.health_unknown = False  # healthy() raises TargetError (an engine away)
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

    @property
    def restored(self) -> list[Release]:
        return [release for release, _ in self.restores]

    def starts(self) -> Starts | None:
        return self.started

    async def healthy(self) -> bool | None:
        if self.health_unknown:
            raise TargetError("the engine does not answer")
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
