"""Canary deploys end to end: real HAProxy, real Docker, the daemon, users under load.

Green takes the traffic in weight steps; gates judge it on its own requests as HAProxy logged
them, the baseline gates against blue's requests over the same time. Times and counts are
measured and reported (``record_property`` and the output), never asserted.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from tests.deploy.conftest import TARGET, LoadClient, Stage
from tests.support.daemon import TOKEN
from tests.support.images import set_mode, wait_http

pytestmark = [pytest.mark.docker, pytest.mark.haproxy, pytest.mark.slow]

# Absolute gates beside the baseline ones, as docs/canary.md shows them.
GATES = """gates:
        - {metric: error_rate, above: 1%}
        - {metric: latency_p95, above: 2s}
        - {metric: error_rate, compare: baseline, tolerance: 50%}
        - {metric: latency_p95, compare: baseline, tolerance: 20%}"""


def canary(steps: str) -> str:
    return f"strategy: canary\n      steps: {steps}\n      {GATES}"


def load(stage: Stage, clients: list[LoadClient], users: int = 1, rate: float = 100.0) -> None:
    """``users`` clients of ``rate`` requests a second each (a slow release slows a client:
    several keep the rate up)."""
    clients.extend(LoadClient(stage.frontend, rate=rate).start() for _ in range(users))
    wait_http(stage.frontend, 10)
    time.sleep(1.0)  # some traffic on blue before the deploy


def responses(clients: list[LoadClient]) -> list[Any]:
    return sorted((r for c in clients for r in c.responses), key=lambda r: r.sent)


def order(stage: Stage, what: str) -> subprocess.CompletedProcess[str]:
    """``watchdogd canary WHAT shop`` as an operator runs it."""
    assert stage.daemon is not None
    command = [sys.executable, "-m", "watchdogd", "canary", what, TARGET]
    command += ["--url", stage.daemon.url, "--token", TOKEN]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def wait_step(stage: Stage, step: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert stage.daemon is not None
        last = stage.daemon.target(TARGET).get("deploy") or {}
        if (last.get("bake") or {}).get("step") == step and last.get("stage") == "baking":
            return last
        time.sleep(0.1)
    raise AssertionError(f"the deploy never baked at step {step}: {last}")


def metric(stage: Stage, name: str) -> float:
    assert stage.daemon is not None
    text = httpx.get(f"{stage.daemon.url}/metrics", timeout=5).text
    line = next(x for x in text.splitlines() if x.startswith(f'{name}{{target="{TARGET}"}}'))
    return float(line.split()[-1])


class TestSteps:
    def test_a_good_release_walks_every_step_and_is_promoted(
        self, stage: Stage, load_clients: list[LoadClient]
    ) -> None:
        release = stage.derived_image("v5")
        config = stage.config(
            log_socket=True,
            min_requests=5,
            strategy=canary("[{weight: 10%, for: 6s}, {weight: 50%, for: 4s}]"),
        )
        daemon = stage.start_daemon(config)
        load(stage, load_clients)

        stage.deploy(release, detach=True)
        first = wait_step(stage, 1)
        assert first["bake"]["weight"] == 10
        assert metric(stage, "watchdogd_deploy_green_weight") in (10.0, 50.0)
        status = subprocess.run(
            [sys.executable, "-m", "watchdogd", "status", "--url", daemon.url, "--token", TOKEN],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert "canary" in status.stdout, status.stdout
        record = stage.wait_stage("promoted", timeout=120)
        time.sleep(1.0)
        for client in load_clients:
            client.stop()

        # Both steps passed with every gate ok, and said so.
        lines = "\n".join(record["lines"])
        assert "step 1/2 (green 10 %)" in lines, lines
        assert "step 2/2 (green 50 %)" in lines, lines
        full = daemon.get(f"/api/v1/targets/{TARGET}/deploy").json()["deploy"]
        assert full["stage"] == "promoted"
        verdicts = [step["verdict"] for step in full["bake"]["steps"]]
        assert all(v.startswith("every gate ok") for v in verdicts), verdicts
        users = load_clients[0]
        assert users.served_by("v5"), "green took no traffic"
        assert users.failed() == []
        # Blue is retired; the new release serves every request under blue's name.
        assert stage.app_containers() == [stage.blue]
        assert users.responses[-1].version == "v5"
        assert metric(stage, "watchdogd_deploy_green_weight") == 0.0


class TestBaseline:
    def test_a_slower_release_is_rolled_back_by_the_baseline_gate_alone(
        self, stage: Stage, load_clients: list[LoadClient], record_property: Any
    ) -> None:
        """Green answers in 0.3 s where blue answers in milliseconds: far under the absolute
        2 s, clearly worse than blue. Only the baseline gate can see it."""
        slow = stage.derived_image("v6", mode="slow", slow=0.3)
        config = stage.config(
            log_socket=True, strategy=canary("[{weight: 50%, for: 120s}, {weight: 100%, for: 5s}]")
        )
        stage.start_daemon(config)
        load(stage, load_clients, users=6, rate=20.0)

        started = time.time()
        stage.deploy(slow, detach=True)
        wait_step(stage, 1)
        switched = time.time()
        record = stage.wait_stage("rolled_back", timeout=120)
        time.sleep(1.0)
        for client in load_clients:
            client.stop()

        numbers = record["numbers"]
        assert numbers.get("gate") == "traffic:latency_p95:baseline", record
        assert "at step 1/2 (green 50 %)" in record["reason"], record["reason"]
        served = responses(load_clients)
        green = [r for r in served if r.version == "v6"]
        assert green, "green took no traffic"
        # No absolute gate could have fired: green answered well under 2 s.
        assert all(r.at - r.sent < 2.0 for r in green)
        assert served[-1].version == "v1"
        assert stage.app_containers() == [stage.blue]
        detected = float(numbers["detected_at"])
        figures = {
            "detection_after_switch_s": round(detected - switched, 2),
            "green_requests": len(green),
            "deploy_to_rollback_s": round(detected - started, 2),
        }
        for key, value in figures.items():
            record_property(key, value)
        print(f"baseline canary figures: {figures}")


class TestFailedRequests:
    def test_a_failing_release_at_a_5_percent_step_costs_about_its_share(
        self, stage: Stage, load_clients: list[LoadClient], record_property: Any
    ) -> None:
        """Users' failed requests during a bad canary are about the step's weight times the
        rate times the time to detect."""
        release = stage.derived_image("v7")
        config = stage.config(
            log_socket=True, strategy=canary("[{weight: 5%, for: 120s}, {weight: 50%, for: 5s}]")
        )
        stage.start_daemon(config)
        load(stage, load_clients)

        stage.deploy(release, detach=True)
        wait_step(stage, 1)
        green = stage.deploy_record()["green"]
        broke_at = time.time()
        set_mode(stage.docker.containers.get(green), "500")
        record = stage.wait_stage("rolled_back", timeout=120)
        time.sleep(1.0)
        for client in load_clients:
            client.stop()

        users = load_clients[0]
        detected = float(record["numbers"].get("detected_at") or time.time())
        during = [r for r in users.responses if broke_at <= r.sent < detected]
        failed = users.failed(since=broke_at)
        rate = len(during) / max(detected - broke_at, 1e-3)
        expected = 0.05 * rate * (detected - broke_at)
        figures = {
            "detection_after_break_s": round(detected - broke_at, 2),
            "failed_requests": len(failed),
            "expected_weight_x_rate_x_detection": round(expected, 1),
            "requests_per_s": round(rate, 1),
            "failed_sent_after_detection": len([r for r in failed if r.sent >= detected]),
        }
        for key, value in figures.items():
            record_property(key, value)
        print(f"5 % canary figures: {figures}")
        # Every failure came from green, and after the switch back nothing failed.
        assert failed, "the broken green failed no request: the test did not break it"
        assert all(r.version in ("v7", "") for r in failed)
        assert users.failed(since=time.time() - 0.5) == []
        assert users.responses[-1].version == "v1"


class TestOperatorOrders:
    STEPS = "[{weight: 20%, for: 300s}, {weight: 60%, for: 300s}]"

    def test_pause_resume_and_promote(self, stage: Stage, load_clients: list[LoadClient]) -> None:
        release = stage.derived_image("v8")
        daemon = stage.start_daemon(stage.config(log_socket=True, strategy=canary(self.STEPS)))
        load(stage, load_clients)
        # Nothing to order yet: 409, and nothing changes.
        early = order(stage, "pause")
        assert early.returncode == 1
        assert "409" in early.stderr, early.stderr

        stage.deploy(release, detach=True)
        wait_step(stage, 1)
        paused = order(stage, "pause")
        assert paused.returncode == 0, paused.stderr
        assert daemon.target(TARGET)["deploy"]["bake"]["paused"] is True
        again = order(stage, "pause")
        assert again.returncode == 1
        assert "already paused" in again.stderr, again.stderr
        assert order(stage, "resume").returncode == 0
        assert daemon.target(TARGET)["deploy"]["bake"]["paused"] is False
        refused = order(stage, "resume")
        assert refused.returncode == 1
        assert "not paused" in refused.stderr, refused.stderr
        # Unknown order and a missing token change nothing.
        unknown = daemon.post(f"/api/v1/targets/{TARGET}/deploy/faster", {})
        assert unknown.status_code == 404
        anonymous = httpx.post(f"{daemon.url}/api/v1/targets/{TARGET}/deploy/abort", timeout=5)
        assert anonymous.status_code == 401
        assert stage.deploy_record()["stage"] == "baking"

        promoted = order(stage, "promote")
        assert promoted.returncode == 0, promoted.stderr
        record = stage.wait_stage("promoted", timeout=60)
        time.sleep(1.0)
        for client in load_clients:
            client.stop()
        assert "promoted by an operator at step 1/2" in record["reason"], record["reason"]
        assert stage.app_containers() == [stage.blue]
        assert load_clients[0].responses[-1].version == "v8"
        assert load_clients[0].failed() == []

    def test_abort_switches_back_to_blue(
        self, stage: Stage, load_clients: list[LoadClient]
    ) -> None:
        release = stage.derived_image("v9")
        stage.start_daemon(stage.config(log_socket=True, strategy=canary(self.STEPS)))
        load(stage, load_clients)

        stage.deploy(release, detach=True)
        wait_step(stage, 1)
        aborted = order(stage, "abort")
        assert aborted.returncode == 0, aborted.stderr
        record = stage.wait_stage("rolled_back", timeout=60)
        time.sleep(1.0)
        for client in load_clients:
            client.stop()
        assert "aborted by an operator" in record["reason"], record["reason"]
        users = load_clients[0]
        assert users.served_by("v9"), "green took no traffic before the abort"
        assert users.responses[-1].version == "v1"
        assert users.failed() == []
        assert stage.app_containers() == [stage.blue]
