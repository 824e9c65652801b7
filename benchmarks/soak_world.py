"""The soak's moving parts besides the targets: the daemon process (SIGKILL, restart,
SIGHUP with a valid or an invalid config, RSS and fd samples), the Docker engine (stopped and
started again, only when allowed), steady client load, Alertmanager deliveries, and what is
read back at the end (the store, the engine) as ``soak_invariants.Observed``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import httpx
from common import TOKEN, DaemonProc
from soak_invariants import Incident, JournalRow, Observed, Sample
from soak_targets import SoakTarget, label_of_env

BAKE = "20s"
# The engine the soak drives; the daemon must watch the same one.
DOCKER_HOST = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
COOLDOWN = "5s"
INVALID_CONFIG = "targets:\n  - name: broken\n    kind: container\n    containre: nope\n"


class Daemon:
    """``watchdogd run`` with the soak's config; one log file per incarnation."""

    def __init__(self, workdir: Path, port: int, targets: list[SoakTarget]) -> None:
        self.workdir = workdir
        self.port = port
        self.targets = targets
        self.config = workdir / "watchdogd.yaml"
        self.commands = workdir / "commands.log"
        self.commands.touch()
        self.state = workdir / "state"
        self.proc: DaemonProc | None = None
        self.incarnation = 0
        self.level = "info"
        self.write_config()

    def render(self) -> str:
        blocks = "".join(
            f"  - name: {t.name}\n{t.config()}"
            f"    alerts:\n      - match: {{service: {t.name}}}\n"
            "    playbook:\n"
            # Not idempotent: one line per run, so a second run for one incident shows.
            f'      - command: {{command: [sh, -c, \'echo "$WATCHDOGD_INCIDENT" >> '
            f"{self.commands}']}}\n"
            "      - rollback: {}\n"
            "      - wait_healthy: {timeout: 30s}\n"
            for t in self.targets
        )
        return f"""\
listen: 127.0.0.1:{self.port}
api_token: {TOKEN}
state_dir: {self.state}
log: {{format: json, level: {self.level}}}
docker: {{host: "{DOCKER_HOST}", poll_interval: 1s, timeout: 5s}}
defaults: {{bake_time: {BAKE}, cooldown: {COOLDOWN}, max_rollbacks_per_hour: 1000}}
targets:
{blocks}"""

    def write_config(self, text: str | None = None) -> None:
        temporary = self.config.with_suffix(".tmp")
        temporary.write_text(self.render() if text is None else text)
        os.replace(temporary, self.config)

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.up and self.proc else None

    def start(self) -> None:
        self.incarnation += 1
        log = self.workdir / f"daemon-{self.incarnation}.log"
        self.proc = DaemonProc(self.config, self.port, log=log)
        self.proc.wait_ready(timeout=90)

    def kill(self) -> None:
        if self.proc is not None and self.proc.proc.poll() is None:
            self.proc.proc.send_signal(signal.SIGKILL)
            self.proc.proc.wait(timeout=30)
            self.proc.http.close()

    def hup(self) -> None:
        if self.proc is not None and self.proc.proc.poll() is None:
            self.proc.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def crashed(self) -> str | None:
        """The log's tail when the daemon exited without being told to."""
        if self.proc is None or self.proc.proc.poll() is None:
            return None
        return self.proc.log.read_text(errors="replace")[-3000:]

    def api(self, method: str, path: str, body: Any = None) -> httpx.Response | None:
        """One API call; None while the daemon is away or does not answer."""
        if not self.up:
            return None
        try:
            with httpx.Client(timeout=10, trust_env=False) as client:
                return client.request(
                    method,
                    f"http://127.0.0.1:{self.port}{path}",
                    json=body,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
        except httpx.HTTPError:
            return None

    def status(self, target: str) -> dict[str, Any] | None:
        response = self.api("GET", f"/api/v1/targets/{target}")
        if response is None or response.status_code != 200:
            return None
        found: dict[str, Any] = response.json()
        return found

    def sample(self) -> Sample | None:
        pid = self.pid
        if pid is None:
            return None
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return None
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        return Sample(time.time(), pid, rss * 1024, fds)


class Engine:
    """Stops and starts the dockerd named by ``pidfile`` with its own command line again."""

    def __init__(self, pidfile: Path, log: Path) -> None:
        self.pidfile = pidfile
        self.log = log

    def _alive(self, pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped

    def restart(self, away: float) -> None:
        pid = int(self.pidfile.read_text().strip())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        if Path(argv[0].decode()).name != "dockerd":
            raise RuntimeError(f"{self.pidfile} names {argv[0]!r}, not dockerd")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 90
        while self._alive(pid):
            if time.monotonic() > deadline:
                raise RuntimeError("dockerd did not stop within 90 s")
            time.sleep(0.2)
        time.sleep(away)
        with self.log.open("ab") as out:
            subprocess.Popen(
                [a.decode() for a in argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(Exception):
                client = docker.from_env(timeout=5)
                try:
                    client.ping()
                    return
                finally:
                    client.close()
            if time.monotonic() > deadline:
                raise RuntimeError("dockerd did not answer within 90 s of its start")
            time.sleep(0.5)


class Load(threading.Thread):
    """Steady client load on every target: about ``rate`` requests a second each."""

    def __init__(self, urls: list[str], rate: float = 4.0) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.interval = 1.0 / rate
        self.sent = 0
        self.failed = 0
        self.served: Counter[str] = Counter()  # answers by the release that gave them
        self._halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=4.0, trust_env=False) as client:
            while not self._halt.wait(self.interval):
                for url in self.urls:
                    self.sent += 1
                    try:
                        answer = client.get(url)
                        ok = answer.status_code == 200
                        self.served[answer.headers.get("X-App-Version", "")] += 1
                    except httpx.HTTPError:
                        ok = False
                    self.failed += not ok

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def alert_payload(target: str, fingerprint: str, starts: float, status: str) -> dict[str, Any]:
    """An Alertmanager v4 webhook body with one alert for ``target``."""
    starts_at = datetime.fromtimestamp(starts, UTC).isoformat()
    alert = {
        "status": status,
        "labels": {"alertname": "SoakBad", "service": target},
        "annotations": {},
        "startsAt": starts_at,
        "endsAt": starts_at if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }
    return {"version": "4", "status": status, "receiver": "watchdogd", "alerts": [alert]}


# --------------------------------------------------------------------------- read back


def _label(kind: str, spec: dict[str, Any]) -> str | None:
    if kind == "release_dir":
        return str(spec.get("version"))
    if kind == "compose":
        replicas = spec.get("replicas") or [{}]
        spec = replicas[0]
    return label_of_env((spec.get("Config") or {}).get("Env"))


def read_store(
    state: Path, kinds: dict[str, str], current_ids: dict[str, str | None], observed: Observed
) -> None:
    """Incidents, journal, the audit log's incident ends; what the API's current release ids
    and each target's last restore are, as labels."""
    uri = f"file:{state / 'watchdogd.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        rows = db.execute(
            "SELECT id, target, trigger_kind, state, started_at, ended_at, restore_release "
            "FROM incidents ORDER BY started_at"
        ).fetchall()
        observed.incidents = [Incident(*row[:6]) for row in rows]
        for _id, target, _kind, state_, started, _ended, restore in rows:
            if state_ == "succeeded" and restore:
                spec = json.loads(restore).get("spec") or {}
                observed.last_restore[target] = (started, _label(kinds[target], spec) or "?")
        observed.journal = [
            JournalRow(*row)
            for row in db.execute(
                "SELECT incident_id, step_index, action, attempt, status FROM journal"
            )
        ]
        observed.audit_ends = {
            row[0]
            for row in db.execute(
                "SELECT incident_id FROM audit WHERE kind = 'incident_finished' "
                "AND incident_id IS NOT NULL"
            )
        }
        for target, release_id in current_ids.items():
            row = db.execute(
                "SELECT spec_json FROM releases WHERE target = ? AND release_id = ?",
                (target, release_id),
            ).fetchone()
            label = None if row is None else _label(kinds[target], json.loads(row[0]))
            observed.believed[target] = label or f"? ({release_id})"


def engine_objects(client: docker.DockerClient) -> dict[str, set[str]]:
    """Names of the engine's networks and dangling volumes."""
    return {
        "networks": {n["Name"] for n in client.api.networks()},
        "volumes": {
            v["Name"] for v in client.api.volumes(filters={"dangling": True})["Volumes"] or []
        },
    }


def remove_new_volumes(client: docker.DockerClient, before: dict[str, set[str]]) -> None:
    """At teardown, the unused volumes that appeared during the run. A container watchdogd
    restored mounts its predecessor's anonymous volume by name, which the engine then treats
    as named: ``docker rm -v`` and ``docker-compose down -v`` keep it (the user's data, which
    the restore kept on purpose), so the soak removes it itself."""
    for volume in sorted(engine_objects(client)["volumes"] - before["volumes"]):
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_volume(volume)


def leaks(
    client: docker.DockerClient, before: dict[str, set[str]], own_networks: set[str]
) -> list[str]:
    """watchdogd's swap temporaries still there, and volumes and networks that appeared during
    the run and that nothing uses (the soak's own deploys leave none)."""
    found = [
        f"container {c['Names'][0].lstrip('/')}"
        for c in client.api.containers(all=True)
        if any("-wd-new-" in n or "-wd-old-" in n for n in c.get("Names") or [])
    ]
    after = engine_objects(client)
    found += [f"volume {v}" for v in sorted(after["volumes"] - before["volumes"])]
    found += [f"network {n}" for n in sorted(after["networks"] - before["networks"] - own_networks)]
    return found
