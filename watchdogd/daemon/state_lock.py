"""One daemon per ``state_dir``: an exclusive ``flock`` on the directory, taken before anything
else and held for the life of the process.

Two daemons on one ``state_dir`` would resume the same incident twice and run its steps
against each other. The lock is on the directory itself, not on a file in it, so a
read-only ``state_dir`` can still be locked (the daemon then reports the store as not
writable, as it does when the directory turns read-only later). The kernel drops the lock when
the process ends, however it ends (``SIGKILL`` included), so there is no stale lock to clean
up; child processes do not inherit it (the descriptor is close-on-exec).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from watchdogd.errors import StartupError

__all__ = ["StateDirLock"]


class StateDirLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process's end)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_dir: Path) -> StateDirLock:
        """Create ``state_dir`` if needed and lock it; ``StartupError`` with a one-line reason
        when it cannot be created, is not a directory, or another process holds it."""
        if state_dir.exists() and not state_dir.is_dir():
            raise StartupError(f"state_dir {state_dir} is not a directory")
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise StartupError(f"state_dir {state_dir} cannot be used: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StartupError(
                f"another watchdogd is running with state_dir {state_dir}; stop it first, or "
                "give this one a state_dir of its own"
            ) from None
        except OSError as err:
            os.close(fd)
            raise StartupError(f"state_dir {state_dir} cannot be locked: {err.strerror}") from None
        return cls(state_dir, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> StateDirLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
