"""Processes the demo starts and must not leave behind.

A process whose parent has exited is re-parented to PID 1, and in a container PID 1 may never
reap it: ``kill(pid, 0)`` then still succeeds on the zombie. So "alive" here means "exists
and is not a zombie", read from ``/proc``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

PR_SET_PDEATHSIG = 1


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, and belongs to someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): kill(0) is all we know
    # The state follows the command name, which is in parentheses and may contain spaces.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def terminate(pid: int, timeout: float = 5.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; True when the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return True
            time.sleep(0.05)
    return not alive(pid)


def tied_to_this_process(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped so that the process gets SIGTERM when this one dies, even by SIGKILL
    (Linux ``PR_SET_PDEATHSIG``, set in the child before it execs ``argv``)."""
    return [sys.executable, "-m", "watchdogd.demo.procs", str(os.getpid()), *argv]


def _exec_tied(parent: int, argv: list[str]) -> NoReturn:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(1)  # the parent died before the death signal was armed
    os.execv(argv[0], argv)  # noqa: S606 - the argv the demo itself built, never a shell


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or not args[0].isdigit():
        print("usage: python -m watchdogd.demo.procs PARENT_PID COMMAND [ARG...]")
        return 2
    _exec_tied(int(args[0]), args[1:])


if __name__ == "__main__":
    sys.exit(main())
