"""The demo's release directory, laid out as on a plain VM::

    <root>/releases/v1/fault     "none": the good release
    <root>/releases/v2/fault     "errors", "latency", "auth" or "crash": the bad one
    <root>/current -> releases/v1
    <root>/app.json              the app's port and the pid of the demo that owns it
    <root>/app.ready             the pid of the app process that serves (see ``app_ctl``)

The app reads the release ``current`` names when it starts, so a switch of ``current`` takes
effect at the next restart, as with a real deploy.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

FAULTS = ("errors", "latency", "auth", "crash")
FAULT_FILE = "fault"
SETTINGS_FILE = "app.json"
READY_FILE = "app.ready"
GOOD, BAD = "v1", "v2"

FAULT_DESCRIPTIONS = {
    "none": "every endpoint answers normally",
    "errors": "every 4th /api request answers 500",
    "latency": "/api answers after 2.8 s",
    "auth": "every 3rd /auth/me rejects a valid token with 401",
    "crash": "the first /api request kills the process",
}


@dataclass(frozen=True)
class AppSettings:
    """What the app and its controller need besides the release: where to listen, and
    whose death means nobody will stop the app (so it stops itself)."""

    port: int
    owner_pid: int | None = None

    def write(self, root: Path) -> None:
        data = {"port": self.port, "owner_pid": self.owner_pid}
        (root / SETTINGS_FILE).write_text(json.dumps(data) + "\n")

    @classmethod
    def read(cls, root: Path) -> AppSettings:
        data = json.loads((root / SETTINGS_FILE).read_text())
        return cls(port=int(data["port"]), owner_pid=data.get("owner_pid"))


def create(root: Path, fault: str, settings: AppSettings) -> None:
    """Lay out v1 (good) and v2 (``fault``), with ``current`` on v1."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; pick one of {', '.join(FAULTS)}")
    for version, kind in ((GOOD, "none"), (BAD, fault)):
        directory = root / "releases" / version
        directory.mkdir(parents=True, exist_ok=True)
        (directory / FAULT_FILE).write_text(f"{kind}\n# {FAULT_DESCRIPTIONS[kind]}\n")
    settings.write(root)
    switch(root, GOOD)


def switch(root: Path, version: str) -> None:
    """Point ``current`` at ``releases/<version>`` the way deploy scripts do: a new link under
    a temporary name, renamed over the old one, so no reader ever sees no link."""
    temporary = root / f".current.{secrets.token_hex(4)}"
    temporary.symlink_to(Path("releases") / version)
    os.replace(temporary, root / "current")


def announce_ready(root: Path, pid: int) -> None:
    """Say that process ``pid`` serves now (atomically: a reader sees the old pid or this one)."""
    temporary = root / f".{READY_FILE}.{pid}"
    temporary.write_text(f"{pid}\n")
    os.replace(temporary, root / READY_FILE)


def ready_pid(root: Path) -> int | None:
    """The pid of the app process that last said it serves."""
    try:
        return int((root / READY_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def current(root: Path) -> tuple[str, str | None]:
    """The version ``current`` names and its fault (``None`` for a good release)."""
    resolved = (root / "current").resolve()
    first = (resolved / FAULT_FILE).read_text().split("\n", 1)[0].strip()
    return resolved.name, None if first in ("", "none") else first
