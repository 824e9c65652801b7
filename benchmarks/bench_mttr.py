"""MTTR on a real engine: watchdogd against Docker Swarm's own rollback, fault by fault.

For each fault of ``mttr_app.FAULTS`` and each run, on the shared Docker engine:

**watchdogd**: a container runs v1 (``--restart always``, HEALTHCHECK every 2 s, port
published on 127.0.0.1) and a fresh daemon watches it (fresh state, so no earlier run's
quarantine shortcuts the detection) with the checks an operator would configure: container
health, an HTTP probe of ``/cgi-bin/api`` (1 s interval, 1 s timeout) and a login flow
(``/cgi-bin/login`` then ``/cgi-bin/me``, 1 s interval, 2 s timeout); gates error rate above 1 %
(with the hard-down fast path: 3 failures in a row), p95 latency above 1 s (3 samples),
login failure rate above 1 %, unhealthy. Once v1 has baked (10 s: longer than the slowest
detection, so a bad release is never marked known-good first) the fault is deployed as a
deploy script would: ``docker stop`` + ``rm`` of v1, ``docker run`` of the bad release.

**Swarm**: a one-replica service of v1, port published in host mode (no routing mesh here),
HEALTHCHECK every 2 s, ``--update-failure-action rollback --update-monitor 5s``, stop-first;
the fault is deployed with ``docker service update``.

Both are timed the same way, from outside. t0 is the engine's ``start`` event of the bad
release's first container. *Detection* is watchdogd's ``incident_started`` audit event, or
the first time Swarm's ``UpdateStatus.State`` reads ``rollback_started`` (polled every
100 ms). *Restored* is the first of two consecutive answers of v1 in mode ok on the published
port (polled every 50 ms, new connection each). MTTR = restored - t0; restore = restored -
detection. A run where the previous release never serves again within 60 s (or, for Swarm,
10 s after the update completed without a rollback) is a miss. Figures are medians over the
runs; a miss counts as infinitely slow.

Targets: hard-down faults (500s, crash loop) detected within 3 s; MTTR within 10 s.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from common import TOKEN, DaemonProc, Row, free_port
from mttr_app import (
    FAULTS,
    HEALTH_INTERVAL,
    LABEL,
    Fault,
    app_checks,
    build_images,
    labelled,
    remove_images,
    remove_labelled,
    run_container,
    wait_first_start,
    wait_healthy,
    wait_serving,
    watching,
)

RESTORE_TIMEOUT = 60.0
SWARM_GRACE = 10.0  # after Swarm says the update completed, how long a rollback may still come


@dataclass
class RunResult:
    detect: float | None
    mttr: float | None
    note: str = ""

    @property
    def restore(self) -> float | None:
        if self.detect is None or self.mttr is None:
            return None
        return self.mttr - self.detect


CONFIG = """\
listen: 127.0.0.1:{port}
api_token: {token}
state_dir: {state}
log: {{format: json, level: info}}
docker: {{poll_interval: 1s}}
defaults: {{bake_time: 10s, cooldown: 10s}}
targets:
  - name: app
    container: {name}
{checks}    playbook:
      - rollback: {{}}
      - wait_healthy: {{timeout: 30s}}
"""


def watchdogd_run(
    client: docker.DockerClient, refs: dict[str, str], fault: Fault, run: str
) -> RunResult:
    workdir = Path(tempfile.mkdtemp(prefix="bench-mttr-"))
    name, port, api_port = f"bench-wd-{run}", free_port(), free_port()
    labels = {"bench.run": run}
    daemon = None
    try:
        run_container(client, name, refs["v1"], port, labels=labels)
        wait_serving(port)
        wait_healthy(client, name)
        config = workdir / "watchdogd.yaml"
        config.write_text(
            CONFIG.format(
                port=api_port,
                token=TOKEN,
                state=workdir / "state",
                name=name,
                checks=app_checks(f"http://127.0.0.1:{port}", latency_evidence="min_samples: 3"),
            )
        )
        daemon = DaemonProc(config, api_port, log=workdir / "daemon.log")
        daemon.wait_ready()
        daemon.wait_state("app", "healthy", timeout=60)
        with watching(port) as watch:
            deployed = time.time()
            old = client.containers.get(name)
            old.stop(timeout=10)
            old.remove()
            run_container(
                client,
                name,
                refs[fault.image],
                port,
                env=fault.env,
                labels=labels | {"bench.release": "bad"},
            )
            t0 = wait_first_start(client, [f"bench.run={run}", "bench.release=bad"], deployed)
            restored = watch.wait_good(t0, RESTORE_TIMEOUT) if t0 is not None else None
            if restored is not None:
                # Let the playbook finish (wait_healthy) so that the run ends clean.
                with contextlib.suppress(RuntimeError):
                    daemon.wait_state("app", "rolled_back", timeout=40)
        started = [e for e in daemon.events() if e["kind"] == "incident_started"]
        detected = min(e["at"] for e in started) if started else None
        trigger = started[0]["message"] if started else "no incident"
        if t0 is None:
            return RunResult(None, None, "the bad release never started")
        return RunResult(
            detected - t0 if detected is not None else None,
            restored - t0 if restored is not None else None,
            trigger,
        )
    finally:
        if daemon is not None:
            daemon.stop()
        remove_labelled(client, f"bench.run={run}")
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- Swarm


def _docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


class UpdateWatch(threading.Thread):
    """Polls the service's ``UpdateStatus.State`` every 100 ms; notes when a rollback starts
    and when the update completes."""

    def __init__(self, client: docker.DockerClient, service: str) -> None:
        super().__init__(daemon=True)
        self.client, self.service = client, service
        self.rollback_at: float | None = None
        self.completed_at: float | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.1):
            status = self.client.api.inspect_service(self.service).get("UpdateStatus") or {}
            state, at = str(status.get("State", "")), time.time()
            if state.startswith("rollback") and self.rollback_at is None:
                self.rollback_at = at
            if state == "completed" and self.completed_at is None:
                self.completed_at = at


def swarm_run(
    client: docker.DockerClient, refs: dict[str, str], fault: Fault, run: str
) -> RunResult:
    service, port = f"bench-swarm-{run}", free_port()
    interval = f"{HEALTH_INTERVAL:g}s"
    try:
        _docker(
            "service", "create", "--detach", "--no-resolve-image", "--quiet",
            "--name", service, "--replicas", "1",
            "--label", f"bench.run={run}",
            "--container-label", f"{LABEL}=1", "--container-label", f"bench.run={run}",
            "--publish", f"mode=host,published={port},target=8080",
            "--health-cmd", "wget -q -O- http://127.0.0.1:8080/cgi-bin/health || exit 1",
            "--health-interval", interval, "--health-timeout", "1s", "--health-retries", "2",
            "--update-failure-action", "rollback", "--update-monitor", "5s",
            "--update-order", "stop-first", "--rollback-monitor", "5s",
            refs["v1"],
        )  # fmt: skip
        wait_serving(port, timeout=60)
        deadline = time.monotonic() + 60
        while not (tasks := labelled(client, f"bench.run={run}")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service} runs no container")
            time.sleep(0.2)
        wait_healthy(client, tasks[0])
        updates = UpdateWatch(client, service)
        updates.start()
        with watching(port) as watch:
            deployed = time.time()
            env = [a for k, v in fault.env.items() for a in ("--env-add", f"{k}={v}")]
            _docker(
                "service", "update", "--detach", "--no-resolve-image", "--quiet",
                "--image", refs[fault.image], *env,
                "--container-label-add", "bench.release=bad", service,
            )  # fmt: skip
            t0 = wait_first_start(client, [f"bench.run={run}", "bench.release=bad"], deployed)
            restored = None
            deadline = time.monotonic() + RESTORE_TIMEOUT
            while t0 is not None and restored is None and time.monotonic() < deadline:
                restored = watch.good_after(t0)
                done = updates.completed_at
                if done is not None and time.time() - done > SWARM_GRACE:
                    break
                time.sleep(0.1)
        updates.halt.set()
        updates.join()
        if t0 is None:
            return RunResult(None, None, "the bad release never started")
        note = "rolled back" if updates.rollback_at else "update completed; no rollback"
        if restored is None:
            note += "; " + _swarm_story(client, service)
        return RunResult(
            updates.rollback_at - t0 if updates.rollback_at else None,
            restored - t0 if restored is not None else None,
            note,
        )
    finally:
        subprocess.run(["docker", "service", "rm", service], capture_output=True, check=False)
        deadline = time.monotonic() + 30
        while labelled(client, f"bench.run={run}"):
            if time.monotonic() > deadline:
                remove_labelled(client, f"bench.run={run}")
                break
            time.sleep(0.2)


def _swarm_story(client: docker.DockerClient, service: str) -> str:
    """What Swarm says of a run that never served v1 again: its update state and message,
    and the states of its last tasks."""
    status = client.api.inspect_service(service).get("UpdateStatus") or {}
    tasks = sorted(
        client.api.tasks(filters={"service": service}),
        key=lambda t: str(t.get("CreatedAt")),
    )[-3:]
    states = ", ".join(
        f"{t['Status'].get('State')}"
        + (f" ({t['Status'].get('Err')})" if t["Status"].get("Err") else "")
        for t in tasks
    )
    return f"{status.get('State')}: {status.get('Message', '')}; last tasks: {states}"


# --------------------------------------------------------------------------- the matrix


def _median(values: list[float | None]) -> float | None:
    if not values:
        return None
    return statistics.median(float("inf") if v is None else v for v in values)


class Swarm:
    """A single-node swarm on 127.0.0.1 for the run; left again only if we created it."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.created = False

    def __enter__(self) -> Swarm:
        if self.client.info()["Swarm"]["LocalNodeState"] != "active":
            _docker("swarm", "init", "--advertise-addr", "127.0.0.1")
            self.created = True
        return self

    def __exit__(self, *_exc: Any) -> None:
        if self.created:
            subprocess.run(
                ["docker", "swarm", "leave", "--force"], capture_output=True, check=False
            )


def run(quick: bool = False, runs: int | None = None) -> list[Row]:
    count = runs or (1 if quick else 5)
    client = docker.from_env()
    refs = build_images(client)
    results: dict[tuple[str, str], list[RunResult]] = {}
    stamp = str(int(time.time()))
    try:
        with Swarm(client):
            for fault in FAULTS:
                for index in range(count):
                    run_id = f"{stamp}-{fault.name.split()[0]}-{index}"
                    for system, runner in (("watchdogd", watchdogd_run), ("swarm", swarm_run)):
                        result = runner(client, refs, fault, f"{run_id}-{system[0]}")
                        results.setdefault((fault.name, system), []).append(result)
                        print(
                            f"  mttr {fault.name:12} {system:9} run {index + 1}/{count}: "
                            f"detect {_s(result.detect)}, restored {_s(result.mttr)} "
                            f"({result.note[:70]})",
                            flush=True,
                        )
    finally:
        remove_labelled(client, f"{LABEL}=1")
        remove_images(client, refs)
    return rows_of(results, count)


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def rows_of(results: dict[tuple[str, str], list[RunResult]], count: int) -> list[Row]:
    rows = []
    for fault in FAULTS:
        ours, swarm = results[(fault.name, "watchdogd")], results[(fault.name, "swarm")]
        missed = sum(r.mttr is None for r in swarm)
        note = f"Swarm restored {count - missed} of {count} runs" + (
            f"; {swarm[0].note}" if missed else ""
        )
        detect = _median([r.detect for r in ours])
        rows.append(
            Row(
                "mttr",
                f"{fault.name}: detection",
                detect,
                "s",
                "Swarm update rollback",
                _median([r.detect for r in swarm]),
                "<= 3 s" if fault.hard_down else "",
                (detect is not None and detect <= 3.0) if fault.hard_down else None,
            )
        )
        rows.append(
            Row(
                "mttr",
                f"{fault.name}: restore after detection",
                _median([r.restore for r in ours]),
                "s",
                "Swarm update rollback",
                _median([r.restore for r in swarm]),
            )
        )
        mttr = _median([r.mttr for r in ours])
        rows.append(
            Row(
                "mttr",
                f"{fault.name}: MTTR (median of {count})",
                mttr,
                "s",
                "Swarm update rollback",
                _median([r.mttr for r in swarm]),
                "<= 10 s",
                mttr is not None and mttr <= 10.0,
                note=note,
            )
        )
    return rows


if __name__ == "__main__":
    import sys

    from common import print_table

    print_table(run("--quick" in sys.argv))
