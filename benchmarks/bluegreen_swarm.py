"""Row (c) of ``bench_bluegreen.py``: Swarm's own rollback, behind the same HAProxy, under the
same load and the same fault (a release answering 500 on every endpoint, image v2).

A single-node swarm on 127.0.0.1 (``bench_mttr.Swarm``). The service runs one replica of v1
with its port published in host mode (no routing mesh: HAProxy's static server ``blue`` points
at the node's port, as it points at the container's in the other cases), the app's
HEALTHCHECK (every 2 s, 2 retries), stop-first updates and rollbacks (a host-mode port cannot
be bound by two tasks of one node). The fault is deployed by ``docker service update --image
v2``. Two ways to go back:

* **after detection** (the row): watchdogd watches the service (``swarm:`` target) with the
  same HTTP check through HAProxy and error-rate gate as the re-create case; its ``rollback``
  step is Swarm's own rollback, ``rollback=previous`` (``docker service rollback``), because
  the service's ``PreviousSpec`` is the known-good release. Detection is the
  ``incident_started`` audit event, so this case differs from the re-create only in how the
  previous release comes back.
* **by itself** (``--update-failure-action rollback --update-monitor 5s``, no watchdogd):
  Swarm's monitor sees the bad task fail its HEALTHCHECK and rolls back. Detection is the
  engine's time of the service event ``updatestate.new=rollback_started`` (nanoseconds; a poll
  of ``UpdateStatus`` every 100 ms is the fallback). It only sees faults that fail the
  HEALTHCHECK (this one does; the blue-green case's fault need not).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bluegreen_stage import HAProxy, Load, Outcome, daemon_config, wait
from common import DaemonProc, free_port
from mttr_app import HEALTH_INTERVAL, LABEL, labelled, remove_labelled, wait_serving

SERVICE_LABEL = "bench.bluegreen.swarm"


def _docker(*args: str) -> None:
    subprocess.run(["docker", *args], capture_output=True, text=True, check=True)


class RollbackWatch(threading.Thread):
    """When Swarm's ``UpdateStatus.State`` first reads ``rollback_started`` (every 100 ms)."""

    def __init__(self, client: Any, service: str) -> None:
        super().__init__(daemon=True)
        self.client, self.service = client, service
        self.rollback_at: float | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.1) and self.rollback_at is None:
            status = self.client.api.inspect_service(self.service).get("UpdateStatus") or {}
            if str(status.get("State", "")).startswith("rollback"):
                self.rollback_at = time.time()


def _create(service: str, image: str, port: int, by_itself: bool) -> None:
    interval = f"{HEALTH_INTERVAL:g}s"
    failure = ["--update-failure-action", "rollback"] if by_itself else []
    _docker(
        "service", "create", "--detach", "--no-resolve-image", "--quiet",
        "--name", service, "--replicas", "1",
        "--container-label", f"{LABEL}=1", "--container-label", f"{SERVICE_LABEL}={service}",
        "--publish", f"mode=host,published={port},target=8080",
        "--health-cmd", "wget -q -O- http://127.0.0.1:8080/cgi-bin/health || exit 1",
        "--health-interval", interval, "--health-timeout", "1s", "--health-retries", "2",
        *failure, "--update-monitor", "5s", "--update-order", "stop-first",
        "--rollback-order", "stop-first", "--rollback-monitor", "5s",
        image,
    )  # fmt: skip


def swarm_case(client: Any, refs: dict[str, str], *, by_itself: bool) -> Outcome:
    """One incident: v1 serving, v2 deployed by ``docker service update``, back to v1."""
    service = f"bench-bg-swarm-{time.monotonic_ns() % 10**8}"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-bg-swarm-") as tmp:
        workdir = Path(tmp)
        proxy: HAProxy | None = None
        daemon: DaemonProc | None = None
        load: Load | None = None
        try:
            _create(service, refs["v1"], port, by_itself)
            wait_serving(port, timeout=60)
            proxy = HAProxy(workdir, port)
            if not by_itself:
                daemon_port = free_port()
                config = daemon_config(
                    workdir, daemon_port, f"swarm: {{service: {service}}}", proxy, traffic=False
                )
                daemon = DaemonProc(config, daemon_port, log=workdir / "daemon.log")
                daemon.wait_ready()
                daemon.wait_state("shop", "healthy")
            load = Load(proxy.url)
            load.start()
            time.sleep(1.0)
            watch = RollbackWatch(client, service)
            watch.start()
            broke = time.time()
            _docker(
                "service", "update", "--detach", "--no-resolve-image", "--quiet",
                "--image", refs["v2"], service,
            )  # fmt: skip
            if daemon is not None:
                found = daemon
                wait(lambda: any(e["kind"] == "incident_finished" for e in found.events()), 120)
                started = [e for e in daemon.events() if e["kind"] == "incident_started"]
                detected: float | None = float(started[-1]["at"])
            else:
                wait(lambda: watch.rollback_at is not None, 120)
                detected = _rollback_event(client, service, broke) or watch.rollback_at
            # Back when v1 answers well for a while (Swarm reports "completed" before the
            # rolled-back task serves, so ask the users).
            wait(lambda: _serving_well(load, "v1", 2.0), 120)
            watch.halt.set()
            assert detected is not None
            back = load.last_elsewhere("v1", broke)
            return Outcome(
                failed_total=load.failed(broke),
                failed_after=load.failed(detected),
                back_ms=None if back is None else max(0.0, back - detected) * 1000,
            )
        finally:
            if load is not None:
                load.halt.set()
                load.join(timeout=10)
            if daemon is not None:
                daemon.stop()
            if proxy is not None:
                proxy.stop()
            subprocess.run(["docker", "service", "rm", service], capture_output=True, check=False)
            with contextlib.suppress(RuntimeError):
                wait(lambda: not labelled(client, f"{SERVICE_LABEL}={service}"), 30)
            remove_labelled(client, f"{SERVICE_LABEL}={service}")


def _rollback_event(client: Any, service: str, since: float) -> float | None:
    """When the engine recorded that Swarm started the rollback: the service's update event
    whose new update state is ``rollback_started``, to the nanosecond (polling the service
    sees it 100 ms late or more, longer than Swarm then takes to serve v1 again)."""
    events = client.api.events(
        since=int(since) - 1,
        until=int(time.time()) + 1,
        filters={"type": "service"},
        decode=True,
    )
    for event in events:
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        if (
            attributes.get("name") == service
            and attributes.get("updatestate.new") == "rollback_started"
        ):
            return int(event["timeNano"]) / 1e9
    return None


def _serving_well(load: Load, good: str, span: float) -> bool:
    """The last ``span`` seconds of requests all answered well by ``good``."""
    since = time.time() - span
    recent = [s for s in list(load.samples) if s.sent >= since]
    return bool(recent) and all(s.version == good and 0 < s.status < 500 for s in recent)
