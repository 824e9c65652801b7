"""SIGKILL the daemon at each stage of a deploy, start it again, and look at what users got.

The daemon pauses (TEST-ONLY hook, ``watchdogd.playbook.crash_points.PAUSE_STAGE_ENV``) right after
it journaled the stage, and is killed there. The restarted daemon must end the deploy: abort it
(before any user reached green: green removed) or switch users back to blue (the bake was cut
short); never traffic on an unjudged release with nobody watching, never a container nobody
has a record of. A load client runs through HAProxy the whole time.
"""

from __future__ import annotations

import time

import pytest

from tests.deploy.conftest import TARGET, LoadClient, Stage
from tests.e2e.conftest import sigkill, wait_file
from tests.support.images import wait_http
from watchdogd.playbook.crash_points import PAUSE_FILE_ENV, PAUSE_STAGE_ENV

pytestmark = [pytest.mark.docker, pytest.mark.haproxy, pytest.mark.slow]


@pytest.mark.parametrize(
    ("stage_name", "outcome"),
    [
        ("green_created", "aborted"),
        ("green_ready", "aborted"),
        ("switching", "rolled_back"),
        ("baking", "rolled_back"),
    ],
)
def test_sigkill_at_each_stage(
    stage: Stage, load_clients: list[LoadClient], stage_name: str, outcome: str
) -> None:
    release = stage.derived_image(f"crash-{stage_name.replace('_', '-')}")
    version = release.rsplit(":", 1)[1]
    config = stage.config(bake_time="3s")
    marker = stage.tmp / "paused"
    first = stage.start_daemon(config, {PAUSE_STAGE_ENV: stage_name, PAUSE_FILE_ENV: str(marker)})
    users = LoadClient(stage.frontend).start()
    load_clients.append(users)
    wait_http(stage.frontend, 10)

    stage.deploy(release, detach=True)
    wait_file(marker, first, timeout=60)
    sigkill(first)
    killed_at = time.time()
    time.sleep(1.0)  # users meanwhile: on blue, or on green, with nobody watching
    containers_while_down = stage.app_containers()

    stage.start_daemon(config)
    record = stage.wait_stage(outcome, timeout=90)
    time.sleep(1.0)
    users.stop()

    assert record["stage"] == outcome, record
    assert f"watchdogd restarted at stage {stage_name}" in "\n".join(record["lines"])
    # Every container that existed while the daemon was down was in the journal.
    assert set(containers_while_down) <= {stage.blue, record["green"]}
    # One container in the end, under blue's name.
    assert stage.app_containers() == [stage.blue]
    running = stage.docker.containers.get(stage.blue)
    assert running.attrs["Config"]["Image"].endswith(":v1")
    assert users.responses[-1].version == "v1"
    if outcome == "aborted":
        assert users.served_by(version) == []
        assert set(stage.servers()) == {"blue"}
    else:
        serving = {n for n, row in stage.servers().items() if row["status"] != "MAINT"}
        assert serving == {"blue"}
        assert stage.daemon is not None
        assert stage.daemon.target(TARGET)["quarantined"] == []  # cut short, not judged bad
    failed = users.failed()
    print(f"{stage_name}: {len(failed)} failed requests of {len(users.responses)}")
    assert failed == [], [(r.at - killed_at, r.status) for r in failed]
    assert stage.daemon is not None
    assert stage.daemon.target(TARGET)["state"] in ("baking", "healthy")


def test_sigkill_while_promoting_finishes_the_promotion(
    stage: Stage, load_clients: list[LoadClient]
) -> None:
    """Killed once ``promoting`` is journaled (green judged good, blue not yet retired): the
    restarted daemon retires blue and gives green its name; users stay on green throughout."""
    release = stage.derived_image("crash-promoting")
    config = stage.config(bake_time="3s")
    marker = stage.tmp / "paused"
    first = stage.start_daemon(config, {PAUSE_STAGE_ENV: "promoting", PAUSE_FILE_ENV: str(marker)})
    users = LoadClient(stage.frontend).start()
    load_clients.append(users)
    wait_http(stage.frontend, 10)

    stage.deploy(release, detach=True)
    wait_file(marker, first, timeout=60)
    green = stage.deploy_record()["green"]
    sigkill(first)
    time.sleep(1.0)
    containers_while_down = stage.app_containers()

    stage.start_daemon(config)
    record = stage.wait_stage("promoted", timeout=90)
    time.sleep(1.0)
    users.stop()

    assert "watchdogd restarted at stage promoting" in "\n".join(record["lines"])
    assert set(containers_while_down) == {stage.blue, green}
    # One container, under blue's name, running the new release; HAProxy sends it everything.
    assert stage.app_containers() == [stage.blue]
    assert stage.docker.containers.get(stage.blue).attrs["Config"]["Image"] == release
    serving = {n for n, row in stage.servers().items() if row["status"] != "MAINT"}
    assert len(serving) == 1
    assert serving != {"blue"}
    assert users.responses[-1].version == "crash-promoting"
    failed = users.failed()
    print(f"promoting: {len(failed)} failed requests of {len(users.responses)}")
    assert failed == []
