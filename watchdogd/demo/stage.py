"""Where the demo deploys: what a stage must do, and the release directory stage.

A stage starts the good release, deploys the bad one the way an operator's script would, and
afterwards says whether the good one is back. The runner does the rest, the same for every
stage: it starts watchdogd with the stage's config and watches.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Protocol

import httpx

from watchdogd.demo import app_ctl, release, scenario
from watchdogd.errors import DemoError

# How long the restored release has to answer its health endpoint once watchdogd reports
# the rollback done (its wait_healthy step passed already): a slow machine, not a fault.
RESTORED_GRACE = 10.0


class Stage(Protocol):
    description: str  # "release directory /tmp/…", for the first line of output
    app_url: str  # where the users' traffic goes
    traffic_path: str  # the path the users request
    template: str  # scenario template name

    @property
    def app_log(self) -> Path | None:
        """Where the app's own output goes, when it is a file."""

    def config(self, listen: str, token_file: Path, state_dir: Path) -> str:
        """The rendered watchdogd config."""

    async def start(self) -> str:
        """Run the good release; a sentence for the log."""

    async def deploy(self) -> str:
        """Replace it with the bad release; a sentence for the log."""

    async def restored(self) -> tuple[bool, str]:
        """Whether the good release runs and answers again, and what was seen."""

    async def close(self) -> None:
        """Stop and remove everything the stage started."""


async def answers_as(url: str, version: str) -> tuple[bool, str]:
    """Whether ``url`` (a health endpoint) answers 200 with ``version`` in its JSON."""
    try:
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            response = await client.get(url)
        seen = response.json().get("version")
    except (httpx.HTTPError, ValueError, AttributeError) as err:
        return False, f"{url} did not answer ({type(err).__name__})"
    ok = response.status_code == 200 and seen == version
    return ok, f"{url} answers {response.status_code} as {seen}"


async def answers_within(
    url: str, version: str, seconds: float, every: float = 0.2
) -> tuple[bool, str]:
    """``answers_as``, asked again until it holds or ``seconds`` have passed: on a loaded
    machine a release that is back can miss one request's timeout."""
    deadline = time.monotonic() + seconds
    while True:
        ok, seen = await answers_as(url, version)
        if ok or time.monotonic() >= deadline:
            return ok, seen
        await asyncio.sleep(every)


class ReleaseDirStage:
    """The app as a release directory on this machine: no Docker engine needed."""

    template = scenario.RELEASE_DIR_TEMPLATE
    traffic_path = "/api"

    def __init__(self, root: Path, fault: str, port: int, owner_pid: int) -> None:
        self.root = root
        self.fault = fault
        self.settings = release.AppSettings(port=port, owner_pid=owner_pid)
        self.app_url = f"http://127.0.0.1:{port}"
        self.description = f"release directory {root}"

    def config(self, listen: str, token_file: Path, state_dir: Path) -> str:
        return scenario.render(
            self.template,
            paths={
                "token_file": str(token_file),
                "state_dir": str(state_dir),
                "root": str(self.root),
                "python": sys.executable,
            },
            words={"listen": listen, "app": self.app_url},
        )

    async def start(self) -> str:
        release.create(self.root, self.fault, self.settings)
        ok, message = await asyncio.to_thread(app_ctl.start, self.root)
        if not ok:
            raise DemoError(f"the sample app did not start: {message} (see {self.app_log})")
        return f"app {message}; current -> releases/{release.GOOD}"

    async def deploy(self) -> str:
        release.switch(self.root, release.BAD)
        ok, message = await asyncio.to_thread(app_ctl.restart, self.root)
        state = "" if ok else " (it did not come up: exactly what watchdogd is for)"
        return f"deployed: current -> releases/{release.BAD}, app restarted: {message}{state}"

    async def restored(self) -> tuple[bool, str]:
        version, _fault = release.current(self.root)
        if version != release.GOOD:
            return False, f"current -> releases/{version}"
        ok, seen = await answers_within(f"{self.app_url}/health", release.GOOD, RESTORED_GRACE)
        return ok, f"current -> releases/{version}; {seen}"

    async def close(self) -> None:
        await asyncio.to_thread(app_ctl.stop, self.root)

    @property
    def app_log(self) -> Path:
        return self.root / app_ctl.LOG_FILE
