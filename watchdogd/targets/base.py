"""The seam between the playbook and the things it changes.

A driver reads which release a target runs and puts a given release back. ``restore`` must be
idempotent: called again after a crash, it converges on the same end state and never leaves
the target with nothing running.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from watchdogd.model import ExecResult, Release, Starts

__all__ = ["ExecResult", "TargetDriver"]


class TargetDriver(Protocol):
    target: str

    async def current(self) -> Release | None:
        """The release running now; ``None`` when nothing runs. Raises ``TargetError`` when the
        target cannot be inspected (engine down)."""

    def starts(self) -> Starts | None:
        """The starts of the containers the last :meth:`current` found; ``None`` where the
        runtime has no such notion (a release directory, a Swarm service's tasks)."""

    async def restore(self, release: Release, stop_timeout: float) -> None:
        """Make ``release`` the one that runs. Raises ``TargetError`` on failure, after putting
        back what ran before where it can."""

    async def healthy(self) -> bool | None:
        """Health as the runtime sees it (Docker HEALTHCHECK); ``None`` when it has no opinion."""

    # The timeout is a parameter, not asyncio.timeout(): a blocking exec runs in a thread that
    # cancellation cannot stop, so the driver must enforce the limit itself.
    async def exec(
        self,
        command: Sequence[str],
        *,
        user: str | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        """Run a command inside the current release (for ``exec`` steps)."""
