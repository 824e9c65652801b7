"""The soak's events: a lane per target that deploys, freezes, rolls back and alerts whenever
the target has settled, and the daemon-wide events (SIGKILL, SIGHUP, the engine, HAProxy).
``benchmarks/soak.py`` (its docstring says what each event is) builds the stage and runs it.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from docker.errors import APIError, DockerException
from mttr_app import FAULTS
from requests import RequestException
from soak_bluegreen import FAILS_UNDER_TRAFFIC, BlueGreenTarget, deploy_view, pair_sample
from soak_bluegreen_invariants import BgAttempt, PairSample
from soak_invariants import Deploy, History, Outage
from soak_targets import SoakTarget
from soak_world import INVALID_CONFIG, Daemon, Engine, alert_payload

from watchdogd.watch.presence import RESTART_GRACE

FAULT = {f.name: f for f in (*FAULTS, FAILS_UNDER_TRAFFIC)}
SETTLE_TIMEOUT = 150.0  # a lane that has not settled by then is reported and moves on
LANE_ACTIONS = (
    ("deploy good", 4),
    ("deploy bad", 4),
    ("freeze", 1),
    ("manual rollback", 1),
    ("unquarantine", 1),
    ("resolved before firing", 1),
    ("docker restart", 1),
    ("docker stop", 1),
)
GLOBAL_ACTIONS = (
    ("sigkill", 3),
    ("sighup valid", 2),
    ("sighup invalid", 2),
    ("engine", 1),
    ("haproxy restart", 2),
)


@dataclass
class Lane:
    target: SoakTarget
    phase: str = "idle"  # idle | settling | frozen | stopped
    since: float = 0.0
    next_at: float = 0.0
    bad: bool = False
    label: str = ""
    before_id: str | None = None
    kind: str = ""
    break_in_bake: bool = False  # blue-green: the soak breaks this release when its bake starts


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
    bg: BlueGreenTarget | None = None
    attempts: list[BgAttempt] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)
    pairs: list[PairSample] = field(default_factory=list)
    first_globals: list[str] = field(default_factory=list)

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
        elif lane.phase == "stopped" and now >= lane.next_at:
            self._start_again(lane, now)
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
        target = lane.target
        deploying = isinstance(target, BlueGreenTarget) and lane.kind == "deploy" and lane.label
        if deploying and not self._bluegreen_settled(lane, target, now):  # type: ignore[arg-type]
            return  # its deploy goes on (and is broken when its bake starts)
        if status is None or status.get("incident") or status.get("state") != "healthy":
            return
        if lane.kind == "restart" and now - lane.since < RESTART_GRACE + 3.0:
            return  # a false rollback would come in the grace or right after: wait it out
        current = (status.get("current_release") or {}).get("id")
        running = lane.target.running()
        if running is None or (lane.kind == "deploy" and lane.bad and running == lane.label):
            return  # not rolled back yet, or a swap is under way
        blue_green = isinstance(lane.target, BlueGreenTarget)
        if lane.kind == "deploy" and not lane.bad and current == lane.before_id and not blue_green:
            return  # not seen yet, or not baked yet (a deploy's end is its record's)
        lane.phase, lane.next_at = "idle", now + self.rng.uniform(0.5, 3.0)

    def _bluegreen_settled(self, lane: Lane, target: BlueGreenTarget, now: float) -> bool:
        """Whether the lane's deploy has ended; breaks its release when its bake starts."""
        view = deploy_view(self.daemon.api, target.name)
        if view is None or not str(view.get("image", "")).endswith(f":{lane.label}"):
            return False
        if lane.break_in_bake and view.get("stage") == "baking" and view.get("green"):
            lane.break_in_bake = False
            try:
                target.break_green(str(view["green"]))
            except Exception as err:  # gone meanwhile (a crash's resume removed it)
                self.note("break failed", target.name, label=lane.label, error=str(err)[-200:])
                return False
            self.history.deploys.append(Deploy(time.time(), target.name, lane.label, True))
            # A bad release from now on, no longer the good one it was deployed as.
            self.attempts = [a for a in self.attempts if a.label != lane.label]
            self.attempts.append(BgAttempt(time.time(), lane.label, "traffic"))
            self.broken.add(lane.label)
            lane.bad = True
            self.note("green broken in its bake", target.name, label=lane.label)
        if not view.get("final"):
            return False
        if lane.break_in_bake:
            lane.break_in_bake = False  # ended before its bake: it stays a good release
            self.note("deploy ended before its bake", target.name, stage=view.get("stage"))
        return True

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
        else:
            self._operate(lane, now, action)

    def _operate(self, lane: Lane, now: float, action: str) -> None:
        """One of an operator's actions on a settled target."""
        name = lane.target.name
        if action == "freeze":
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
        elif action in ("docker restart", "docker stop"):
            self._by_hand_on_release(lane, now, action)
        elif action == "resolved before firing":
            self.serial += 1
            fingerprint, starts = f"soak-rbf-{self.serial}", time.time() - 5
            for status in ("resolved", "firing"):
                self._alert(name, fingerprint, starts, status)
            self.note("resolved before firing", name, fingerprint=fingerprint)
            # Nothing may start; should something start, the lane waits for it to end.
            self._settle(lane, now, "operator")

    def _by_hand_on_release(self, lane: Lane, now: float, action: str) -> None:
        """An operator restarts a good release, or stops it for a while: watchdogd must not
        roll it back (the failures while it boots again count against nobody, and restoring
        the previous release would overrule the stop): a false rollback is a violation."""
        target = lane.target
        if action == "docker restart":
            how = self._by_hand(target.name, target.restart)
            if how is not None:
                self.note(action, target.name, how=how, release=target.running())
                self._settle(lane, now, "restart")
        else:
            how = self._by_hand(target.name, target.stop_by_hand)
            if how is not None:
                self.note(action, target.name, how=how, release=target.running())
                lane.phase, lane.since = "stopped", now
                lane.next_at = now + self.rng.uniform(3.0, 15.0)
        if how is None:
            lane.next_at = now + 1.0

    def _by_hand(self, target: str, act: Callable[[], str | None]) -> str | None:
        """An operator's ``docker`` command on ``target``; None when the engine refused it."""
        try:
            return act()
        except (APIError, DockerException, RequestException, RuntimeError) as err:
            self.note("by hand failed", target, error=str(err)[-200:])
            return None

    def _start_again(self, lane: Lane, now: float) -> None:
        """The operator starts the release they stopped; judged again after the grace."""

        def start() -> str:
            lane.target.start_by_hand()
            return "start"

        if self._by_hand(lane.target.name, start) is None:
            lane.next_at = now + 2.0  # the engine is away: try again
            return
        stopped_for = round(now - lane.since, 1)
        self.note("docker start", lane.target.name, stopped_for=stopped_for)
        self._settle(lane, now, "restart")

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
        if isinstance(target, BlueGreenTarget):
            self._bluegreen_deployed(lane, began, label, fault)
            self.note("deploy bad" if bad else "deploy good", target.name, label=label, how=done)
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

    def _bluegreen_deployed(self, lane: Lane, began: float, label: str, fault: Any | None) -> None:
        """A release caught by the pre-checks never reaches users: it is no deploy of the
        history's (what runs stays the last good one). One broken in its bake is good until
        the soak breaks it (``_bluegreen_settled``)."""
        name = lane.target.name
        if fault is None or fault is FAILS_UNDER_TRAFFIC:
            self.history.deploys.append(Deploy(began, name, label, False, "watchdogd deploy"))
            self.attempts.append(BgAttempt(began, label, "good"))
            lane.bad, lane.break_in_bake = False, fault is not None
        else:
            self.attempts.append(BgAttempt(began, label, "pre-check"))
            lane.bad = False  # what runs stays blue

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
        if not action and self.first_globals:
            action = self.first_globals.pop()  # each kind once, so that a short run has all
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
        elif action == "haproxy restart" and self.bg is not None:
            away_from = time.time()
            self.bg.restart_haproxy()
            self.history.outages.append(Outage(away_from, time.time(), "haproxy"))
            self.note("haproxy restart")
        elif action == "engine" and self.engine is not None and time.time() > self.engine_ok_at:
            away_from = time.time()
            self.note("engine stop")
            self.engine.restart(self.rng.uniform(2.0, 10.0))
            # Judging resumes after the grace the containers get to start again, plus a poll.
            back = time.time() + RESTART_GRACE + 5.0
            self.history.outages.append(Outage(away_from, back, "engine"))
            self.note("engine start")
            self.engine_ok_at = time.time() + 60.0  # one outage at a time, a minute apart

    def run(self, seconds: float) -> None:
        end = time.time() + seconds
        self.quiet_from = time.time() + seconds * 0.6
        next_global = time.time() + self.rng.uniform(10, 30)
        kinds = [n for n, _ in GLOBAL_ACTIONS if n != "engine"]  # the engine has its own time
        self.first_globals = self.rng.sample(kinds, len(kinds))
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
                if self.bg is not None and (pair := pair_sample(self.bg, self.daemon.api)):
                    self.pairs.append(pair)
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
