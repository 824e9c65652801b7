"""``watchdogd deploy`` end to end: real HAProxy, real Docker, the daemon, users under load.

Every test runs a load client through HAProxy and asserts on what users got: which release
served them and which requests failed. Times are measured and reported (``record_property``
and the test's output), never asserted.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import pytest

from tests.deploy.conftest import TARGET, LoadClient, Stage
from tests.e2e.conftest import events, wait_event
from tests.support.images import set_mode, wait_http

pytestmark = [pytest.mark.docker, pytest.mark.haproxy, pytest.mark.slow]


def load(stage: Stage, clients: list[LoadClient]) -> LoadClient:
    client = LoadClient(stage.frontend).start()
    clients.append(client)
    wait_http(stage.frontend, 10)
    time.sleep(1.0)  # some traffic on blue before the deploy
    return client


class TestPrePromotionChecks:
    @pytest.mark.parametrize(
        ("fault", "why"),
        [
            ("500", "pre-promotion checks"),
            ("slow", "timeout"),
            ("authfail", "login"),
            ("unhealthy", "unhealthy"),
        ],
    )
    def test_a_bad_release_never_gets_user_traffic(
        self, stage: Stage, load_clients: list[LoadClient], fault: str, why: str
    ) -> None:
        bad = stage.derived_image(f"bad-{fault}", mode=fault)
        daemon = stage.start_daemon(stage.config())
        users = load(stage, load_clients)

        result = stage.deploy(bad)
        users.stop()

        assert result.returncode == 1, result.stdout + result.stderr
        assert "not deployed" in result.stdout or "aborted" in result.stdout, result.stdout
        assert why in result.stdout, result.stdout
        # Users never met the bad release, and nothing failed for them.
        assert users.served_by(f"bad-{fault}") == []
        assert users.failed() == []
        assert users.by_version()["v1"] > 50
        # Green is gone, blue alone serves, HAProxy never had green.
        assert stage.app_containers() == [stage.blue]
        assert set(stage.servers()) == {"blue"}
        record = stage.deploy_record()
        assert record["stage"] == "aborted"
        assert daemon.target(TARGET)["current_release"]["image_ref"].endswith(":v1")


class TestSwitchBack:
    @pytest.mark.parametrize("log_socket", [True, False], ids=["request_log", "counters"])
    def test_a_release_failing_on_real_traffic_is_switched_back(
        self, stage: Stage, load_clients: list[LoadClient], record_property: Any, log_socket: bool
    ) -> None:
        release = stage.derived_image("v4")
        daemon = stage.start_daemon(stage.config(bake_time="60s", log_socket=log_socket))
        users = load(stage, load_clients)

        stage.deploy(release, detach=True)
        stage.wait_stage("baking")
        time.sleep(1.0)  # users on green, all fine
        assert users.served_by("v4"), "green took no traffic"
        green = stage.deploy_record()["green"]
        broke_at = time.time()
        set_mode(stage.docker.containers.get(green), "500")  # the release fails under real load

        record = stage.wait_stage("rolled_back", timeout=60)
        time.sleep(1.0)
        users.stop()

        numbers = record["numbers"]
        # Green's own traffic gate usually sees it first; the target's gate on its check through
        # HAProxy (which sees green too) may win the race, and starts the same playbook.
        finished = wait_event(daemon, "incident_finished", timeout=30)
        started = [
            e
            for e in events(daemon, "incident_started")
            if e["incident_id"] == finished["incident_id"]
        ]
        by_traffic_gate = "detected_at" in numbers
        detected = float(numbers["detected_at"]) if by_traffic_gate else started[0]["at"]
        failed_after = users.failed(since=detected)  # answered after detection
        sent_after = [r for r in failed_after if r.sent >= detected]
        last_green = max(r.sent for r in users.served_by("v4"))
        figures = {
            "failed_before_detection": len(users.failed(since=broke_at)) - len(failed_after),
            "failed_answered_after_detection": len(failed_after),
            "failed_sent_after_detection": len(sent_after),
            "switch_back_ms": numbers.get("switch_back_ms"),
            "last_request_to_green_after_detection_ms": round((last_green - detected) * 1000, 1),
            "detection_after_break_s": round(detected - broke_at, 3),
            "detected_by": "traffic gate" if by_traffic_gate else "target gate",
        }
        for key, value in figures.items():
            record_property(key, value)
        print(f"switch back figures: {figures}")

        # Blue serves everything again; green is drained, removed, quarantined.
        assert users.responses[-1].version == "v1"
        assert users.failed(since=time.time() - 0.5) == []
        assert stage.app_containers() == [stage.blue]
        assert all(
            row["status"] == "MAINT" or name == "blue" for name, row in stage.servers().items()
        )
        assert stage.servers()["blue"]["status"] != "MAINT"
        # The playbook ran around the switch, with green as the bad release, and quarantined it.
        trigger = started[0]["data"]["trigger_name"]
        # Both gates may fire within a tick: the first to start the playbook names it.
        assert trigger in ("traffic:error_rate", "api:error_rate"), trigger
        if trigger == "traffic:error_rate":
            assert record["reason"].startswith("green breached traffic:error_rate")
        quarantined = daemon.target(TARGET)["quarantined"]
        assert len(quarantined) == 1, quarantined
        # Deploying it again is refused, with the reason.
        again = stage.deploy(release)
        assert again.returncode == 1, again.stdout + again.stderr
        assert "quarantined" in again.stderr
        assert stage.app_containers() == [stage.blue]


class TestPlaybookDuringTheBake:
    def test_an_operators_rollback_sends_users_to_blue_before_its_playbook_gets_there(
        self, stage: Stage, load_clients: list[LoadClient]
    ) -> None:
        """A playbook started against green by someone else than green's traffic gates (an
        operator here; the target's own gates or an alert alike) switches users back to blue
        at once. Its first step waits for a file the test writes only once users are seen
        on blue; its rollback step then finds the switch done and removes green."""
        release = stage.derived_image("v4b")
        gate = stage.tmp / "go-on"
        config = stage.config(bake_time="60s")
        playbook = f"""\
    playbook:
      - command: {{command: [sh, -c, "while [ ! -e {gate} ]; do sleep 0.1; done"]}}
        timeout: 60s
      - rollback: {{}}
      - wait_healthy: {{timeout: 30s}}
    traffic:
"""
        config.write_text(config.read_text().replace("    traffic:\n", playbook, 1))
        daemon = stage.start_daemon(config)
        users = load(stage, load_clients)
        stage.deploy(release, detach=True)
        stage.wait_stage("baking")
        time.sleep(1.0)
        assert users.served_by("v4b"), "green took no traffic"
        green = stage.deploy_record()["green"]

        answer = daemon.post(f"/api/v1/targets/{TARGET}/rollback", {"reason": "operator"})
        assert answer.status_code == 202, answer.text
        switched = stage.wait_stage("rolling_back", timeout=10)
        switched_at = time.time()
        time.sleep(1.0)
        # The playbook still waits in its first step: green still runs, nobody is sent to it.
        assert green in stage.app_containers()
        assert events(daemon, "incident_finished") == []
        after = [r for r in users.responses if r.sent > switched_at]
        assert after
        assert {r.version for r in after} == {"v1"}
        assert any("playbook started against green" in line for line in switched["lines"])

        gate.touch()
        record = stage.wait_stage("rolled_back", timeout=60)
        finished = wait_event(daemon, "incident_finished", timeout=30)
        users.stop()
        assert finished["data"]["state"] == "succeeded"
        assert record["stage"] == "rolled_back"
        assert users.failed() == []
        assert stage.app_containers() == [stage.blue]


class TestPromotion:
    def test_a_good_release_is_promoted_and_blue_retired(
        self, stage: Stage, load_clients: list[LoadClient]
    ) -> None:
        release = stage.derived_image("v5")
        daemon = stage.start_daemon(stage.config(bake_time="3s"))
        users = load(stage, load_clients)

        result = stage.deploy(release)
        time.sleep(1.0)
        users.stop()

        assert result.returncode == 0, result.stdout + result.stderr
        assert "promoted" in result.stdout
        for step in ("started from blue's configuration", "pre-checks passed", "switched"):
            assert step in result.stdout, result.stdout
        assert users.failed() == []
        assert users.responses[-1].version == "v5"
        # One container, under blue's name, running the new release; HAProxy sends it all.
        assert stage.app_containers() == [stage.blue]
        running = stage.docker.containers.get(stage.blue)
        assert running.attrs["Config"]["Image"] == release
        serving = {n for n, row in stage.servers().items() if row["status"] != "MAINT"}
        assert len(serving) == 1
        assert serving != {"blue"}
        status = daemon.target(TARGET)
        assert status["current_release"]["image_ref"] == release
        assert status["known_good_release"] is None or status["known_good_release"]["image_ref"]
        kinds = [e["kind"] for e in events(daemon)]
        for kind in ("deploy_started", "deploy_switched", "deploy_promoted"):
            assert kind in kinds, kinds

    def test_haproxy_follows_a_promoted_release_to_its_new_port(
        self, stage: Stage, load_clients: list[LoadClient]
    ) -> None:
        """Green publishes an engine-chosen port, which a restart of its container changes
        (as an engine restart does): HAProxy's server follows it and users get the release
        again. The requests that failed meanwhile are held against nobody: a ``docker
        restart`` by somebody gets a grace, and the good release is not rolled back."""
        release = stage.derived_image("v5b")
        daemon = stage.start_daemon(stage.config(bake_time="3s"))
        users = load(stage, load_clients)
        assert stage.deploy(release).returncode == 0

        def published() -> int:
            ports = stage.docker.api.inspect_container(stage.blue)["NetworkSettings"]["Ports"]
            return int(ports["8080/tcp"][0]["HostPort"])

        def serving_port() -> int:
            rows = stage.servers().values()
            return int(next(r for r in rows if r["status"] != "MAINT")["addr"].rsplit(":")[1])

        before = published()
        assert serving_port() == before
        stage.docker.api.restart(stage.blue, timeout=1)
        after = published()
        assert after != before
        deadline = time.monotonic() + 20
        while serving_port() != after and time.monotonic() < deadline:
            time.sleep(0.1)
        followed = time.time()
        assert serving_port() == after, daemon.log.read_text()[-6000:]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if [r for r in users.responses if r.at > followed + 0.5]:
                break
            time.sleep(0.1)
        users.stop()

        assert {r.version for r in users.responses if r.at > followed + 0.5} == {"v5b"}
        assert stage.docker.containers.get(stage.blue).attrs["Config"]["Image"] == release
        assert events(daemon, "started_again"), daemon.log.read_text()[-6000:]
        assert events(daemon, "incident_started") == [], daemon.log.read_text()[-6000:]
        # The journal says so too: a restarted daemon wants the server at the new port.
        with sqlite3.connect(stage.tmp / "state" / "watchdogd.db") as db:
            stage_name, body = db.execute(
                "SELECT stage, body FROM deploys ORDER BY started_at DESC LIMIT 1"
            ).fetchone()
        assert (stage_name, json.loads(body)["green"]["slot"]["port"]) == ("promoted", after)

    def test_haproxy_restarted_during_the_bake_gets_the_weights_back(
        self, stage: Stage, load_clients: list[LoadClient]
    ) -> None:
        release = stage.derived_image("v6")
        daemon = stage.start_daemon(stage.config(bake_time="12s"))
        users = load(stage, load_clients)
        stage.deploy(release, detach=True)
        stage.wait_stage("baking")

        stage.haproxy.restart()  # forgets green and every weight: users are back on blue
        restarted = time.time()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            recent = [r for r in users.responses if r.at > restarted + 0.2]
            if recent and recent[-1].version == "v6":
                break
            time.sleep(0.1)
        back_at = time.time()
        record = stage.wait_stage("promoted", timeout=60)
        users.stop()

        print(f"weights back {back_at - restarted:.2f} s after the HAProxy restart")
        assert users.responses[-1].version == "v6"
        assert record["stage"] == "promoted"
        assert wait_event(daemon, "traffic_restored", timeout=5)


class TestHAProxyUnreachable:
    def test_a_switch_back_that_cannot_reach_haproxy_fails_loudly_and_lands_later(
        self, stage: Stage, load_clients: list[LoadClient]
    ) -> None:
        release = stage.derived_image("v7")
        daemon = stage.start_daemon(stage.config(bake_time="60s"))
        stage.deploy(release, detach=True)
        stage.wait_stage("baking")

        stage.haproxy.stop()
        answer = daemon.post(f"/api/v1/targets/{TARGET}/rollback", {"reason": "operator"})
        assert answer.status_code == 202, answer.text

        record = stage.wait_stage("failed", timeout=90)
        assert "switch" in record["reason"]
        assert wait_event(daemon, "deploy_failed", timeout=10)
        assert daemon.target(TARGET)["state"] == "frozen"  # never reported as done
        # HAProxy back: the switch back was still wanted, and is applied.
        stage.haproxy.start()
        users = load(stage, load_clients)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and users.responses[-1].version != "v1":
            time.sleep(0.2)
        assert users.responses[-1].version == "v1"

    def test_a_switch_to_green_that_cannot_reach_haproxy_is_never_reported_done(
        self, stage: Stage, load_clients: list[LoadClient]
    ) -> None:
        """HAProxy goes away during the pre-checks: the switch to green is retried, then the
        deploy fails loudly (not promoted, not switched); once HAProxy is back, the split it
        wants, blue serving, is put back."""
        release = stage.derived_image("v9")
        config = stage.config(bake_time="60s")
        text = config.read_text()
        # The target's checks go to blue directly, so that only the deploy meets the outage;
        # long pre-checks leave HAProxy time to go before the switch.
        text = text.replace(stage.haproxy.url, f"http://127.0.0.1:{stage.blue_port}")
        text = text.replace("samples: 3, interval: 200ms", "samples: 10, interval: 500ms")
        config.write_text(text)
        daemon = stage.start_daemon(config)

        stage.deploy(release, detach=True)
        stage.wait_stage("green_created")
        stage.haproxy.stop()
        record = stage.wait_stage("failed", timeout=90)

        assert "not applied after" in record["reason"], record
        assert not any("traffic switched to green" in line for line in record["lines"])
        assert wait_event(daemon, "deploy_failed", timeout=10)
        assert set(stage.app_containers()) <= {stage.blue, record["green"]}
        stage.haproxy.start()
        users = load(stage, load_clients)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and users.responses[-1].version != "v1":
            time.sleep(0.2)
        users.stop()
        assert users.responses[-1].version == "v1"
        assert users.served_by("v9") == []


class TestDeploysByOthers:
    def test_a_bad_release_deployed_by_a_script_is_re_created_as_today(
        self, stage: Stage, load_clients: list[LoadClient]
    ) -> None:
        """Outside ``watchdogd deploy``, a target with ``traffic:`` behaves as without: the bad
        release is replaced by re-creating the container, and HAProxy follows it."""
        daemon = stage.start_daemon(stage.config())
        users = load(stage, load_clients)
        blue = stage.docker.containers.get(stage.blue)
        settings = {"ports": {"8080/tcp": ("127.0.0.1", stage.blue_port)}, "detach": True}
        blue.remove(force=True)
        stage.docker.containers.run(stage.images.v2, name=stage.blue, **settings)

        finished = wait_event(daemon, "incident_finished", timeout=90)
        time.sleep(1.0)
        users.stop()

        assert "rolled back" in finished["message"] or finished["data"]
        assert users.responses[-1].version == "v1"
        assert users.responses[-1].status == 200
        assert stage.app_containers() == [stage.blue]
        assert stage.deploy_record().get("stage") in (None, "promoted")
        # The restored container got the port its recorded configuration asks for (here one
        # the engine picks), and the backend serves from it alone.
        restored = stage.docker.containers.get(stage.blue)
        port = restored.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        serving = [row for row in stage.servers().values() if row["status"] != "MAINT"]
        assert [row["addr"] for row in serving] == [f"127.0.0.1:{port}"]
