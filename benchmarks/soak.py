"""The chaos soak: a real Docker engine, a real ``watchdogd run``, random seeded events, and
invariants checked at the end (issue #16). ``make soak`` runs it for 30 minutes.

    python benchmarks/soak.py --minutes 3 --seed 7 [--engine-restarts /var/run/docker.pid]

Targets (``soak_targets``): a container deployed by ``docker rm -f`` + ``run``, a Compose
service deployed by the real ``docker-compose``, and a release directory; all under steady
client load. Each target is a lane that, whenever it is settled, does one of: deploy a good
release, deploy a bad one (500s, 3 s latency, failed login, crash loop, unhealthy; the release
directory only 500s), freeze it for a few seconds, roll it back by hand, unquarantine an image,
or send an Alertmanager ``resolved`` before its ``firing`` (which must not roll anything back).
A bad deploy is sometimes followed by duplicate and out-of-order deliveries of its alert.
Meanwhile, at random: SIGKILL of the daemon and a restart (none in the last 40 % of the run,
so that one process lives long enough to judge its memory), SIGHUP with a valid or an invalid
config, and (only with ``--engine-restarts PIDFILE``: an engine this run may stop) the engine
stopped for 2 to 10 s and started again, at least once, mid-run.

At the end ``soak_invariants.check`` prints one table. A violation prints the seed and the
event history to replay it; the exit status is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]

import docker  # noqa: E402
from common import free_port  # noqa: E402
from docker.errors import APIError, DockerException  # noqa: E402
from mttr_app import FAULTS, build_images, remove_images  # noqa: E402
from requests import RequestException  # noqa: E402
from soak_invariants import Deploy, History, Observed, Outage, check, table  # noqa: E402
from soak_targets import (  # noqa: E402
    ComposeTarget,
    ContainerTarget,
    ReleaseDirTarget,
    SoakTarget,
)
from soak_world import (  # noqa: E402
    INVALID_CONFIG,
    Daemon,
    Engine,
    Load,
    alert_payload,
    engine_objects,
    leaks,
    read_store,
)

FAULT = {f.name: f for f in FAULTS}
SETTLE_TIMEOUT = 150.0  # a lane that has not settled by then is reported and moves on
LANE_ACTIONS = (
    ("deploy good", 4),
    ("deploy bad", 4),
    ("freeze", 1),
    ("manual rollback", 1),
    ("unquarantine", 1),
    ("resolved before firing", 1),
)
GLOBAL_ACTIONS = (("sigkill", 3), ("sighup valid", 2), ("sighup invalid", 2), ("engine", 1))


@dataclass
class Lane:
    target: SoakTarget
    phase: str = "idle"  # idle | settling | frozen
    since: float = 0.0
    next_at: float = 0.0
    bad: bool = False
    label: str = ""
    before_id: str | None = None
    kind: str = ""


@dataclass
class Soak:
    rng: random.Random
    daemon: Daemon
    lanes: list[Lane]
    engine: Engine | None
    history: History = field(default_factory=History)
    events: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    serial: int = 0
    start: float = field(default_factory=time.time)
    quiet_from: float = float("inf")  # no SIGKILL after this: one process lives to the end
    engine_ok_at: float = 0.0

    def note(self, kind: str, target: str = "", **detail: Any) -> None:
        self.counts[kind] += 1
        entry = {"t": round(time.time() - self.start, 2), "kind": kind, "target": target}
        self.events.append(entry | detail)
        print(f"[{entry['t']:8.2f}] {kind} {target} {json.dumps(detail) if detail else ''}")

    # --- lanes -------------------------------------------------------------------------------

    def lane_step(self, lane: Lane, now: float) -> None:
        if lane.phase == "frozen" and now >= lane.next_at:
            if self._ok(self.daemon.api("POST", f"/api/v1/targets/{lane.target.name}/unfreeze")):
                self.note("unfreeze", lane.target.name)
                self._settle(lane, now, "operator")
        elif lane.phase == "settling":
            self._check_settled(lane, now)
        elif lane.phase == "idle" and now >= lane.next_at and self.daemon.up:
            self._act(lane, now)

    def _settle(self, lane: Lane, now: float, kind: str) -> None:
        status = self.daemon.status(lane.target.name) or {}
        lane.before_id = (status.get("current_release") or {}).get("id")
        lane.phase, lane.since, lane.kind = "settling", now, kind

    def _check_settled(self, lane: Lane, now: float) -> None:
        status = self.daemon.status(lane.target.name)
        if now - lane.since > SETTLE_TIMEOUT:
            self.note("lane stuck", lane.target.name, label=lane.label, status=status)
            lane.phase, lane.next_at = "idle", now
            return
        if status is not None and status.get("state") in ("frozen", "failed"):
            # A playbook failed and froze the target: the operator looks, then unfreezes.
            if now - lane.since > 5.0 and self._ok(
                self.daemon.api("POST", f"/api/v1/targets/{lane.target.name}/unfreeze")
            ):
                self.note("unfreeze after failure", lane.target.name, label=lane.label)
            return
        if status is None or status.get("incident") or status.get("state") != "healthy":
            return
        current = (status.get("current_release") or {}).get("id")
        running = lane.target.running()
        if running is None or (lane.kind == "deploy" and lane.bad and running == lane.label):
            return  # not rolled back yet, or a swap is under way
        if lane.kind == "deploy" and not lane.bad and current == lane.before_id:
            return  # not seen yet, or not baked yet
        lane.phase, lane.next_at = "idle", now + self.rng.uniform(0.5, 3.0)

    def _act(self, lane: Lane, now: float) -> None:
        name = lane.target.name
        status = self.daemon.status(name)
        if status is None or status.get("incident") or status.get("state") != "healthy":
            # Something started meanwhile (a quarantined release, an alert): let it finish.
            self._settle(lane, now, "operator")
            return
        names, weights = zip(*LANE_ACTIONS, strict=True)
        action = self.rng.choices(names, weights)[0]
        if action.startswith("deploy"):
            self._deploy(lane, now, bad=action == "deploy bad")
        elif action == "freeze":
            if self._ok(self.daemon.api("POST", f"/api/v1/targets/{name}/freeze", {})):
                self.note("freeze", name)
                lane.phase, lane.next_at = "frozen", now + self.rng.uniform(1.0, 6.0)
        elif action == "manual rollback":
            response = self.daemon.api("POST", f"/api/v1/targets/{name}/rollback", {})
            accepted = self._ok(response)
            self.note("manual rollback", name, accepted=accepted)
            if accepted:
                self._settle(lane, now, "operator")
            lane.next_at = now + 1.0
        elif action == "unquarantine":
            images = [q["image"] for q in (self.daemon.status(name) or {}).get("quarantined", [])]
            if images:
                image = self.rng.choice(images)
                response = self.daemon.api(
                    "POST", f"/api/v1/targets/{name}/unquarantine", {"image": image}
                )
                self.note("unquarantine", name, image=image[:19], accepted=self._ok(response))
            lane.next_at = now + 1.0
        elif action == "resolved before firing":
            self.serial += 1
            fingerprint, starts = f"soak-rbf-{self.serial}", time.time() - 5
            for status in ("resolved", "firing"):
                self._alert(name, fingerprint, starts, status)
            self.note("resolved before firing", name, fingerprint=fingerprint)
            # Nothing may start; should something start, the lane waits for it to end.
            self._settle(lane, now, "operator")

    def _deploy(self, lane: Lane, now: float, *, bad: bool) -> None:
        self.serial += 1
        target = lane.target
        fault = FAULT[self.rng.choice(target.faults)] if bad else None
        label = f"bad-{fault.name.split()[0]}-{self.serial}" if fault else f"good-{self.serial}"
        how = self.rng.choice(["up", "up", "renew"])
        self._settle(lane, now, "deploy")
        lane.bad, lane.label = bad, label
        began = time.time()
        try:
            done = self._retry(lambda: target.deploy(label, fault, how))
        except Exception as err:
            self.note("deploy failed", target.name, label=label, error=str(err)[-300:])
            lane.phase, lane.next_at = "idle", now + 2.0
            return
        self.history.deploys.append(Deploy(began, target.name, label, bad, done))
        self.note("deploy bad" if bad else "deploy good", target.name, label=label, how=done)
        if bad and self.rng.random() < 0.4:
            # Alertmanager's duplicates, an HA peer's copy and an older episode out of order.
            starts = time.time()
            self._alert(target.name, label, starts, "firing")
            self._alert(target.name, label, starts, "firing")
            self._alert(target.name, label, starts - 60, "resolved")
            self._alert(target.name, label, starts, "firing")
            self.note("duplicate alerts", target.name, label=label)

    def _retry(self, deploy: Callable[[], str]) -> str:
        """A deploy script retries when the name is taken: watchdogd may be mid-swap."""
        for attempt in range(5):
            try:
                return deploy()
            except APIError as err:
                if err.status_code != 409 or attempt == 4:
                    raise
                self.note("deploy retried", error=str(err)[-200:])
                time.sleep(1.0)
        raise AssertionError("unreachable")

    def _alert(self, target: str, fingerprint: str, starts: float, status: str) -> None:
        self.daemon.api(
            "POST", "/hooks/alertmanager", alert_payload(target, fingerprint, starts, status)
        )

    @staticmethod
    def _ok(response: Any) -> bool:
        return response is not None and response.status_code < 300

    # --- the daemon and the engine ---------------------------------------------------------

    def global_step(self, action: str = "") -> None:
        names, weights = zip(*GLOBAL_ACTIONS, strict=True)
        action = action or self.rng.choices(names, weights)[0]
        if action == "sigkill" and time.time() > self.quiet_from:
            action = "sighup valid"  # the last stretch keeps one process, to judge its slope
        if action == "sigkill":
            self.daemon.kill()
            away_from = time.time()
            self.note("sigkill")
            time.sleep(self.rng.uniform(0.2, 3.0))
            self.daemon.start()
            self.history.outages.append(Outage(away_from, time.time(), "daemon"))
            self.note("restart", pid=self.daemon.pid)
        elif action == "sighup valid":
            self.daemon.level = self.rng.choice(["info", "debug"])
            self.daemon.write_config()
            self.daemon.hup()
            self.note("sighup valid", level=self.daemon.level)
        elif action == "sighup invalid":
            self.daemon.write_config(INVALID_CONFIG)
            self.daemon.hup()
            time.sleep(1.0)
            self.daemon.write_config()  # the operator fixes it; the next reload takes it
            self.note("sighup invalid")
        elif action == "engine" and self.engine is not None and time.time() > self.engine_ok_at:
            away_from = time.time()
            self.note("engine stop")
            self.engine.restart(self.rng.uniform(2.0, 10.0))
            self.history.outages.append(Outage(away_from, time.time() + 5.0, "engine"))
            self.note("engine start")
            self.engine_ok_at = time.time() + 60.0  # one outage at a time, a minute apart

    def run(self, seconds: float) -> None:
        end = time.time() + seconds
        self.quiet_from = time.time() + seconds * 0.6
        next_global = time.time() + self.rng.uniform(10, 30)
        # With an engine it may restart, the run restarts it at least once, mid-run.
        engine_at = time.time() + seconds * self.rng.uniform(0.3, 0.6) if self.engine else end
        samples = []
        next_sample = 0.0
        while time.time() < end:
            now = time.time()
            crashed = self.daemon.crashed()
            if crashed is not None:
                self.note("daemon exited by itself", log=crashed[-800:])
                self.daemon.start()
            for lane in self.lanes:
                try:
                    self.lane_step(lane, now)
                except (DockerException, RequestException) as err:
                    # The engine is restarting, or a connection it dropped is reused.
                    self.note("engine call failed", lane.target.name, error=str(err)[-200:])
            if now >= engine_at:
                self.global_step("engine")
                engine_at = end
            elif now >= next_global:
                self.global_step()
                next_global = time.time() + self.rng.uniform(15, 45)
            if now >= next_sample and (sample := self.daemon.sample()) is not None:
                samples.append(sample)
                next_sample = now + 2.0
            time.sleep(0.25)
        self.samples = samples

    def settle_all(self) -> None:
        """Let every lane finish what it started (a frozen one is unfrozen), starting nothing."""
        deadline = time.time() + SETTLE_TIMEOUT + 10
        while time.time() < deadline:
            busy = [lane for lane in self.lanes if lane.phase != "idle"]
            if not busy:
                return
            for lane in busy:
                self.lane_step(lane, time.time())
            time.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--engine-restarts",
        type=Path,
        metavar="PIDFILE",
        help="stop and start the dockerd of this pid file (only an engine this run may stop)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    print(f"soak: seed {seed}, {args.minutes} min, engine restarts: {bool(args.engine_restarts)}")
    workdir = Path(tempfile.mkdtemp(prefix="watchdogd-soak-"))
    run_id = f"{os.getpid()}"
    client = docker.from_env(timeout=60)
    refs = build_images(client)
    before = engine_objects(client)
    ctr = ContainerTarget(client, refs, f"soak-app-{run_id}", free_port(), run_id)
    compose = ComposeTarget(client, refs, f"soak{run_id}", free_port(), workdir, run_id)
    rdir = ReleaseDirTarget(workdir / "app")
    targets: list[SoakTarget] = [ctr, compose, rdir]
    for target in targets:
        target.deploy("good-0", None, "up")
    daemon = Daemon(workdir, free_port(), targets)
    load = Load([f"{ctr.url}/cgi-bin/api", f"{compose.url}/cgi-bin/api", f"{rdir.url}/"])
    engine = Engine(args.engine_restarts, workdir / "dockerd.log") if args.engine_restarts else None
    # Every lane starts by waiting for its first release to bake.
    lanes = [Lane(t, phase="settling", since=time.time(), kind="deploy") for t in targets]
    soak = Soak(random.Random(seed), daemon, lanes, engine)
    try:
        daemon.start()
        load.start()
        soak.run(args.minutes * 60)
        soak.settle_all()
        time.sleep(3)
        load.stop()
        client = docker.from_env(timeout=60)
        observed = Observed(samples=soak.samples)
        kinds = {"ctr": "container", "compose": "compose", "dir": "release_dir"}
        current_ids = {
            t.name: ((daemon.status(t.name) or {}).get("current_release") or {}).get("id")
            for t in targets
        }
        read_store(daemon.state, kinds, current_ids, observed)
        observed.command_log = daemon.commands.read_text().split()
        observed.running = {t.name: t.running() or "?" for t in targets}
        observed.leaks = leaks(client, before, {f"{compose.project}_default"})
    finally:
        load.stop()
        daemon.stop()
        compose.down()
        with contextlib.suppress(Exception):
            client.api.remove_container(ctr.container, force=True, v=True)
        rdir.close()
        remove_images(client, refs)
    return report(seed, soak, observed, load, workdir)


def report(seed: int, soak: Soak, observed: Observed, load: Load, workdir: Path) -> int:
    verdicts, timings = check(soak.history, observed)
    print("\nEvents by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(soak.counts.items())))
    print(f"Client requests: {load.sent}, failed {load.failed}")
    print(
        f"Incidents: {len(observed.incidents)} "
        + str(dict(Counter(f"{i.trigger_kind}/{i.state}" for i in observed.incidents)))
    )
    by_fault: dict[str, list[float]] = {}
    for timing in timings:
        by_fault.setdefault(timing.label.split("-")[1], []).append(timing.detect)
    for fault, seconds in sorted(by_fault.items()):
        print(
            f"Detection of {fault}: {len(seconds)} deploys, median "
            f"{statistics.median(seconds):.2f} s, worst {max(seconds):.2f} s"
        )
    if timings:
        worst_detect = max(timings, key=lambda t: t.detect)
        restores = [t for t in timings if t.restore is not None]
        print(f"Worst detection: {worst_detect.detect:.2f} s ({worst_detect.label})")
        if restores:
            worst = max(restores, key=lambda t: t.restore or 0.0)
            print(f"Worst restore (deploy to incident end): {worst.restore:.2f} s ({worst.label})")
    print("\n" + table(verdicts))
    bad = [v for v in verdicts if not v.ok]
    if not bad:
        print(f"\n0 violations (seed {seed}); work directory {workdir}")
        return 0
    print(f"\nVIOLATIONS (replay: python benchmarks/soak.py --seed {seed} ...):")
    for verdict in bad:
        for violation in verdict.violations:
            print(f"  {verdict.name}: {violation}")
    print("\nEvent history:")
    for event in soak.events:
        print("  " + json.dumps(event))
    print(f"Work directory (daemon logs, store): {workdir}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
