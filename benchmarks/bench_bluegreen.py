"""Blue-green switch back against today's re-create: what users lose to one bad release.

Same app, same load, same run. The app is the integration tests' image (``mttr_app``), behind
a real HAProxy 2.6 (a static server ``blue`` on the app's published port, the request log on
a Unix socket), with a user load of ~100 requests/s through HAProxy that records, per request,
when it was sent, its status and the release that answered (``X-App-Version``).

**(a) blue-green**: the target has ``traffic:``; ``watchdogd deploy`` starts a release that
passes its pre-checks; once users are on it, it starts answering 500 (``docker exec`` sets
its mode: a fault that shows only under real traffic). watchdogd detects it from HAProxy's
request log (the default traffic gate, error rate above 1 %) and switches back.
**(a'') canary**: the same, with ``strategy: canary`` and a first step of 5 %: the fault is
set while green takes 5 % of the requests.
**(a') pre-promotion catch**: ``watchdogd deploy`` of image v2 (500 on every endpoint).
**(b) re-create**: the same target without ``traffic:``; a deploy script replaces the
container (``docker rm -f`` + ``docker run`` of v2 on the same port); watchdogd detects it with
an HTTP check through HAProxy (300 ms interval, error rate above 1 %) and re-creates v1.

Figures, from the load client's records: *failed per incident* counts failed requests (5xx or
no answer) from the fault to the end; *failed after detection* those sent after watchdogd's
detection (a); the deploy's ``detected_at``; (b): the ``incident_started`` audit event);
*detection to previous release serving all traffic* is from detection to the sending of the
last request that v1 did not answer well (after it, v1 served everything); the load is 4
independent users, so one slow request holds up only its own user (resolution ~10 ms).
**(c) Swarm's own rollback** (``bluegreen_swarm.py``): a one-replica service behind the same
HAProxy, v2 deployed by ``docker service update``; back to v1 by ``docker service rollback``
once watchdogd detects it with the re-create case's check and gate (the row that differs from
(b) only in the restore), and, as a second row, by Swarm itself
(``--update-failure-action rollback``, detected when Swarm starts its rollback).

Targets (issue #14): switch back <= 50 ms after detection; 0 failed requests after detection;
a release caught by the pre-promotion checks costs users 0 failed requests.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
from bench_mttr import Swarm
from bluegreen_stage import HAProxy, Load, Outcome, daemon_config, wait
from bluegreen_swarm import swarm_case
from common import TOKEN, DaemonProc, Row, free_port
from mttr_app import LABEL, build_images, remove_images, remove_labelled, run_container

CANARY = "      strategy: canary\n      steps: [{weight: 5%, for: 60s}, {weight: 100%, for: 5s}]\n"


def _stage(
    client: Any, refs: dict[str, str], workdir: Path, traffic: bool, strategy: str = ""
) -> tuple[Any, ...]:
    name = f"bench-bg-{os.getpid()}-{time.monotonic_ns() % 10**8}"
    app_port = free_port()
    run_container(client, name, refs["v1"], app_port)
    wait(
        lambda: (
            client.containers.get(name).attrs["State"].get("Health", {}).get("Status") == "healthy"
        )
    )
    proxy = HAProxy(workdir, app_port)
    port = free_port()
    daemon = DaemonProc(
        daemon_config(workdir, port, f"container: {name}", proxy, traffic, strategy=strategy),
        port,
        log=workdir / "daemon.log",
    )
    daemon.wait_ready()
    daemon.wait_state("shop", "healthy")
    load = Load(proxy.url)
    load.start()
    time.sleep(1.0)
    return name, proxy, daemon, load


def _deploy_record(daemon: DaemonProc) -> dict[str, Any]:
    return daemon.http.get("/api/v1/targets/shop/deploy").json()["deploy"] or {}


def _deploy(daemon: DaemonProc, image: str) -> None:
    answer = daemon.http.post(
        "/api/v1/targets/shop/deploy",
        json={"image": image},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    answer.raise_for_status()


def _blue_green(client: Any, refs: dict[str, str], tag: str, strategy: str = "") -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bench-bg-") as tmp:
        name, proxy, daemon, load = _stage(client, refs, Path(tmp), True, strategy)
        try:
            _deploy(daemon, tag)
            wait(lambda: _deploy_record(daemon).get("stage") == "baking")
            time.sleep(1.0)
            green = _deploy_record(daemon)["green"]
            broke = time.time()
            client.containers.get(green).exec_run(["sh", "-c", "echo 500 > /tmp/mode"])
            wait(lambda: _deploy_record(daemon).get("stage") == "rolled_back")
            wait(lambda: any(e["kind"] == "incident_started" for e in daemon.events()))
            time.sleep(1.0)
            numbers = _deploy_record(daemon)["numbers"]
            # Green's traffic gate, or the target's own gate on its check through HAProxy
            # (which sees green too), whichever is sure first: both switch back.
            started = [e for e in daemon.events() if e["kind"] == "incident_started"]
            detected = float(numbers.get("detected_at") or started[-1]["at"])
            back = load.last_elsewhere("v1", broke)
            return Outcome(
                failed_total=load.failed(broke),
                failed_after=load.failed(detected),
                back_ms=None if back is None else max(0.0, back - detected) * 1000,
                switch_ms=numbers.get("switch_back_ms"),
                detected_by="traffic gate" if numbers.get("detected_at") else "target gate",
            )
        finally:
            _teardown(client, name, proxy, daemon, load)


def _caught(client: Any, refs: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-bg-") as tmp:
        name, proxy, daemon, load = _stage(client, refs, Path(tmp), traffic=True)
        try:
            started = time.time()
            _deploy(daemon, refs["v2"])
            wait(lambda: _deploy_record(daemon).get("stage") == "aborted")
            return load.failed(started)
        finally:
            _teardown(client, name, proxy, daemon, load)


def _recreate(client: Any, refs: dict[str, str]) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bench-bg-") as tmp:
        name, proxy, daemon, load = _stage(client, refs, Path(tmp), traffic=False)
        try:
            port = client.containers.get(name).attrs["HostConfig"]["PortBindings"]["8080/tcp"][0][
                "HostPort"
            ]
            broke = time.time()
            client.api.remove_container(name, force=True)
            run_container(client, name, refs["v2"], int(port))
            wait(lambda: any(e["kind"] == "incident_finished" for e in daemon.events()), 90)
            time.sleep(1.0)
            started = [e for e in daemon.events() if e["kind"] == "incident_started"]
            detected = float(started[-1]["at"])
            back = load.last_elsewhere("v1", broke)
            return Outcome(
                failed_total=load.failed(broke),
                failed_after=load.failed(detected),
                back_ms=None if back is None else max(0.0, back - detected) * 1000,
            )
        finally:
            _teardown(client, name, proxy, daemon, load)


def _teardown(client: Any, name: str, proxy: HAProxy, daemon: DaemonProc, load: Load) -> None:
    load.halt.set()
    load.join(timeout=10)
    daemon.stop()
    proxy.stop()
    for container in client.containers.list(all=True, filters={"name": name}):
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)


def _derived(client: Any, refs: dict[str, str], version: str) -> str:
    ref = refs["v1"].rsplit(":", 1)[0] + f":{version}"
    dockerfile = f"FROM {refs['v1']}\nENV APP_VERSION={version}\n"
    client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=ref, labels={LABEL: "1"}, rm=True
    )
    return ref


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _compared(runs: int, green: list[Outcome], name: str, other: list[Outcome]) -> list[Row]:
    """The three figures of an incident, blue-green against ``other``."""
    back = _median([o.back_ms for o in green])
    after = max(o.failed_after for o in green)
    return [
        Row(
            "bluegreen",
            f"failed requests per incident (median of {runs})",
            _median([float(o.failed_total) for o in green]),
            "requests",
            name,
            _median([float(o.failed_total) for o in other]),
        ),
        Row(
            "bluegreen",
            "failed requests sent after detection (worst run)",
            float(after),
            "requests",
            name,
            float(max(o.failed_after for o in other)),
            target="0",
            passed=after == 0,
        ),
        Row(
            "bluegreen",
            "detection -> previous release serving all traffic (median)",
            back,
            "ms",
            name,
            _median([o.back_ms for o in other]),
            target="<= 50 ms",
            passed=back is not None and back <= 50,
        ),
    ]


def run(quick: bool) -> list[Row]:
    client = docker.from_env()
    refs = build_images(client)
    runs = 1 if quick else 3
    extra: list[str] = []
    try:
        green: list[Outcome] = []
        canary: list[Outcome] = []
        for index in range(runs):
            tag = _derived(client, refs, f"bg{index}")
            extra.append(tag)
            green.append(_blue_green(client, refs, tag))
            tag = _derived(client, refs, f"canary{index}")
            extra.append(tag)
            canary.append(_blue_green(client, refs, tag, CANARY))
        caught = [_caught(client, refs) for _ in range(runs)]
        recreate = [_recreate(client, refs) for _ in range(runs)]
        with Swarm(client):
            swarm = [swarm_case(client, refs, by_itself=False) for _ in range(runs)]
            swarm_alone = [swarm_case(client, refs, by_itself=True) for _ in range(runs)]
    finally:
        remove_labelled(client, f"{LABEL}=1")
        remove_images(client, refs | {t: t for t in extra})
    for case, outcomes in (
        ("blue-green", green),
        ("canary 5 %", canary),
        ("re-create", recreate),
        ("swarm after detection", swarm),
        ("swarm by itself", swarm_alone),
    ):
        print(f"{case}: {outcomes}", file=sys.stderr)  # every run, for the method notes
    print(f"caught by pre-checks: {caught}", file=sys.stderr)
    return [
        *_compared(runs, green, "re-create (today)", recreate),
        *_compared(runs, green, "Swarm rollback after detection", swarm),
        *_compared(runs, green, "Swarm rollback by itself", swarm_alone),
        Row(
            "bluegreen",
            f"canary, 5 % first step: failed requests per incident (median of {runs})",
            _median([float(o.failed_total) for o in canary]),
            "requests",
            "blue-green",
            _median([float(o.failed_total) for o in green]),
            note="failed sent after detection, worst run: "
            + str(max(o.failed_after for o in canary)),
        ),
        Row(
            "bluegreen",
            "switch back applied and verified (drain included)",
            _median([o.switch_ms for o in green]),
            "ms",
            note="deploy numbers switch_back_ms; detected by: "
            + ", ".join(o.detected_by for o in green),
        ),
        Row(
            "bluegreen",
            "release caught by pre-checks: failed requests (worst run)",
            float(max(caught)),
            "requests",
            "re-create (today)",
            _median([float(o.failed_total) for o in recreate]),
            target="0",
            passed=max(caught) == 0,
        ),
    ]


if __name__ == "__main__":
    from common import print_table

    print_table(run("--quick" in sys.argv))
