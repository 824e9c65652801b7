"""Start, stop and restart the demo app: the release directory target's restart command.

    python -m watchdogd.demo.app_ctl start|stop|restart|downgrade ROOT

``restart`` is what ``systemctl restart app`` is on a VM: start a new process from the release
``current`` names, wait until it serves (it writes its pid to ``ROOT/app.ready``), then stop
the old one (by the pid in ``ROOT/app.pid``). It exits 0 when the new process serves, 1 when it
died or never did.

``downgrade`` stands in for a schema downgrade (``alembic downgrade -1``): it appends a line to
``ROOT/migrations.log``. The demo's playbook runs it before the rollback, while the release
that knows how to undo its own migration is still the current one.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from watchdogd.demo import procs, release

PID_FILE = "app.pid"
LOG_FILE = "app.log"
START_TIMEOUT = 10.0


def running_pid(root: Path) -> int | None:
    try:
        pid = int((root / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if procs.alive(pid) else None


def stop(root: Path) -> bool:
    """Stop the app; True when none runs afterwards."""
    pid = running_pid(root)
    stopped = pid is None or procs.terminate(pid)
    if stopped:
        with contextlib.suppress(FileNotFoundError):
            (root / PID_FILE).unlink()
    return stopped


def start(root: Path, timeout: float = START_TIMEOUT) -> tuple[bool, str]:
    """Start the app; (it serves, a sentence saying what happened)."""
    settings = release.AppSettings.read(root)
    version, fault = release.current(root)
    with (root / LOG_FILE).open("ab") as log:
        # Its own session, with output to a file: the daemon runs this command with a pipe and
        # waits for end of file, which a child holding the pipe would never give it.
        process = subprocess.Popen(
            [sys.executable, "-m", "watchdogd.demo.app", str(root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (root / PID_FILE).write_text(f"{process.pid}\n")
    what = f"{version} (fault: {fault or 'none'}), pid {process.pid}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if release.ready_pid(root) == process.pid:
            return True, f"{what} serves on 127.0.0.1:{settings.port}"
        if process.poll() is not None:
            return False, f"{what} exited with {process.returncode} at start"
        time.sleep(0.02)
    return False, f"{what} did not start serving within {timeout:g} s"


def restart(root: Path) -> tuple[bool, str]:
    """Start the new process first, then stop the old one: both listen on the port for a
    moment (SO_REUSEPORT), so the restart itself fails no request."""
    old = running_pid(root)
    ok, message = start(root)
    if old is not None and not procs.terminate(old):
        return False, f"{message}; but the old process {old} would not stop"
    return ok, message


def downgrade(root: Path) -> str:
    bad = os.environ.get("WATCHDOGD_BAD_IMAGE") or release.current(root)[0]
    to = os.environ.get("WATCHDOGD_RESTORE_IMAGE") or "the previous schema"
    line = f"schema downgraded: {bad} -> {to}"
    with (root / "migrations.log").open("a") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
    return line


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("start", "stop", "restart", "downgrade"):
        print("usage: python -m watchdogd.demo.app_ctl start|stop|restart|downgrade ROOT")
        return 2
    command, root = args[0], Path(args[1])
    if command == "downgrade":
        print(downgrade(root))
        return 0
    if command == "stop":
        return 0 if stop(root) else 1
    ok, message = start(root) if command == "start" else restart(root)
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
