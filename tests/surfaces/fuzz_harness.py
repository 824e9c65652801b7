"""The real daemon, in this process, for fuzzing its HTTP surface request by request.

``Daemon.start()`` runs as in production: the store, the targets, the aiohttp server bound to
a loopback port. Then the two loops driven by the clock (the evaluation tick and the release
poll) are stopped, after they have brought the targets to a known state, so that every state
change from then on comes from a request: the check before and after each request is exact,
not racing a timer. Playbooks a request starts are awaited before the next request.

State is read from the outside: SQLite's ``PRAGMA data_version`` on a second connection
changes whenever the daemon commits anything, and each target's state, its ``since``, its
current release and incident are compared in memory.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from yarl import URL

from tests.support.ports import free_port
from watchdogd.config.loader import load_config
from watchdogd.daemon import logs
from watchdogd.daemon.lifecycle import Daemon

TOKEN = "fuzz-token-7d0c4f1e9a2b"
#: Values that reach the config only through ${ENV}, so they are secrets too.
ENV_SECRETS = {
    "WATCHDOGD_FUZZ_TOKEN": TOKEN,
    "WATCHDOGD_FUZZ_HOOK_KEY": "hook-key-3e8a1c55b7",
}
HOOK_KEY = ENV_SECRETS["WATCHDOGD_FUZZ_HOOK_KEY"]
MAX_BODY = 16 * 1024
#: Refusals that must leave no trace at all. 409 is a well-formed request the daemon weighed
#: and declined: it may write one audit line saying so, and nothing else.
REJECTED = frozenset({400, 401, 403, 404, 405, 411, 413, 414, 415, 422, 431})
PLAYBOOK_WAIT = 30.0


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    path: str  # already percent-encoded
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def describe(self) -> str:
        shown = self.body[:300] + (b"..." if len(self.body) > 300 else b"")
        return f"{self.method} {self.path} headers={dict(self.headers)} body={shown!r}"


def _config(root: Path, port: int) -> str:
    return f"""\
listen: 127.0.0.1:{port}
api_token: ${{WATCHDOGD_FUZZ_TOKEN}}
state_dir: {root / "state"}
server: {{max_body: {MAX_BODY}}}
log: {{format: json, level: debug}}
defaults: {{window: 1m, bake_time: 1s, cooldown: 1h}}
notify:
  - {{name: team, url: "json://127.0.0.1:9/hook?key=${{WATCHDOGD_FUZZ_HOOK_KEY}}", timeout: 1s}}
targets:
  - name: app
    release_dir: {{path: {root / "app"}, restart: [/bin/true]}}
    alerts:
      - match: {{service: app}}
    playbook:
      - {{notify: team, retries: 0, on_failure: continue}}
      - rollback: {{}}
      # No check gives fresh evidence here, so wait_healthy runs to its timeout and fails
      # (the target freezes, which the fuzz's unfreeze lifts): short, or every accepted
      # rollback would cost the whole timeout.
      - wait_healthy: {{timeout: 100ms}}
  - name: db
    release_dir: {{path: {root / "db"}, restart: [/bin/true]}}
"""


def _release_dir(root: Path, versions: tuple[str, ...]) -> None:
    for version in versions:
        (root / "releases" / version).mkdir(parents=True)
    (root / "current").symlink_to(root / "releases" / versions[0])


class _Records(logging.Handler):
    """Everything the standard library's loggers (aiohttp's among them) emit, as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


class FuzzHarness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.statuses: Counter[int] = Counter()
        self.structlog_output = io.StringIO()
        self.stdlib_records = _Records()
        self._runner = asyncio.Runner()
        self._saved_env: dict[str, str | None] = {}
        self.daemon: Daemon | None = None
        self._session: aiohttp.ClientSession | None = None
        self._db: sqlite3.Connection | None = None
        self.base = URL("http://127.0.0.1")
        self.release_ids: dict[bytes, bytes] = {}

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        for name, value in ENV_SECRETS.items():
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        _release_dir(self.root / "app", ("v1", "v2"))
        _release_dir(self.root / "db", ("v1",))
        port = free_port()
        self.base = URL(f"http://127.0.0.1:{port}")
        (self.root / "watchdogd.yaml").write_text(_config(self.root, port))
        logging.getLogger().addHandler(self.stdlib_records)
        self._runner.run(self._start())
        self._db = sqlite3.connect(self.root / "state" / "watchdogd.db", isolation_level=None)

    async def _start(self) -> None:
        config = load_config(self.root / "watchdogd.yaml")
        logs.configure("debug", "json", stream=self.structlog_output)
        logs.set_secrets(config.secrets | {TOKEN})
        daemon = Daemon(str(self.root / "watchdogd.yaml"), config)
        self.daemon = daemon
        await daemon.start()
        daemon.supervisor.stop("tick")
        daemon.supervisor.stop("releases")
        # Bring both targets to healthy with a known-good release, as the loops would:
        # app has v1 and v2 known-good (v2 running), db only v1.
        for name in ("app", "db"):
            await self._settle(name)
        (self.root / "app" / "current.new").symlink_to(self.root / "app" / "releases" / "v2")
        (self.root / "app" / "current.new").replace(self.root / "app" / "current")
        await self._settle("app")
        for release in daemon.store.releases("app"):
            self.release_ids[f"@release:{release.release.image}@".encode()] = (
                release.release.id.encode()
            )
        self._session = aiohttp.ClientSession(trust_env=False)

    async def _settle(self, name: str) -> None:
        assert self.daemon is not None
        controller = self.daemon.controllers[name]
        now = time.monotonic()
        await controller.observe_release(now)
        await controller.tick(now + 5)  # past bake_time: known-good
        assert str(controller.machine.state) == "healthy", controller.machine.state

    def close(self) -> None:
        try:
            self._runner.run(self._close())
        finally:
            self._runner.close()
            if self._db is not None:
                self._db.close()
            logging.getLogger().removeHandler(self.stdlib_records)
            structlog.reset_defaults()
            logs.set_secrets(())
            for name, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self.daemon is not None:
            await self.daemon.shutdown()

    # --- one request -----------------------------------------------------------------------

    def snapshot(self) -> tuple[int, tuple[tuple[Any, ...], ...]]:
        assert self._db is not None
        assert self.daemon is not None
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        targets = tuple(
            (
                name,
                str(c.machine.state),
                c.machine.since,
                c.current.id if c.current else None,
                c.incident_id,
            )
            for name, c in sorted(self.daemon.controllers.items())
        )
        return version, targets

    def newest_audit_id(self) -> int:
        assert self._db is not None
        return int(self._db.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0])

    def audit_kinds_after(self, audit_id: int) -> list[str]:
        assert self._db is not None
        rows = self._db.execute("SELECT kind FROM audit WHERE id > ? ORDER BY id", (audit_id,))
        return [str(row[0]) for row in rows]

    def send(self, request: FuzzRequest) -> tuple[int, bytes]:
        return self._runner.run(self._send(request))

    async def _send(self, request: FuzzRequest) -> tuple[int, bytes]:
        assert self._session is not None
        url = URL(str(self.base) + request.path, encoded=True)
        body = request.body
        for marker, release_id in self.release_ids.items():
            body = body.replace(marker, release_id)
        async with self._session.request(
            request.method, url, data=body, headers=dict(request.headers)
        ) as response:
            body = await response.read()
        await self._finish_playbooks()
        self.statuses[response.status] += 1
        return response.status, body

    async def _finish_playbooks(self) -> None:
        assert self.daemon is not None
        running = [c.playbook_task for c in self.daemon.controllers.values() if c.playbook_task]
        if running:
            await asyncio.wait_for(asyncio.gather(*running), PLAYBOOK_WAIT)

    def check(self, request: FuzzRequest) -> int:
        """Send ``request`` and assert the rules; returns its status."""
        before, audit_before = self.snapshot(), self.newest_audit_id()
        status, body = self.send(request)
        what = f"{status} for {request.describe()}: {body[:500]!r}"
        assert status < 500, what
        if status in REJECTED:
            assert self.snapshot() == before, f"state changed on {what}"
        elif status == 409:
            assert self.snapshot()[1] == before[1], f"a target changed on {what}"
            kinds = self.audit_kinds_after(audit_before)
            assert kinds in ([], ["rollback_refused"]), f"{kinds} on {what}"
        return status

    # --- logs ------------------------------------------------------------------------------

    def log_text(self) -> str:
        return self.structlog_output.getvalue() + "\n".join(self.stdlib_records.lines)

    def leaked_secrets(self) -> list[str]:
        text = self.log_text()
        return [name for name, value in ENV_SECRETS.items() if value in text]
