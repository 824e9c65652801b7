"""Somebody's hand on a good release's container, against the real engine and daemon.

* ``docker restart``: the app refuses connections while it stops and boots again
  (``APP_BOOT_SECONDS``), and the same release comes back. Before, those refusals read as
  "hard down" and rolled a good release back; now somebody's start gets the grace an engine
  restart gets, and the failures meanwhile count against nobody.
* ``docker stop``: the release stays stopped. Before, watchdogd restored the previous
  release and started it, overruling the operator; now it is not judged until it runs again.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.conftest import AppDeployment, Daemons, e2e_config_head, events, wait_event
from tests.support.daemon import DaemonProcess
from tests.support.images import AppImages, wait_http
from tests.support.sink import HttpSink

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BOOT_SECONDS = 3


def config(tmp_path: Path, port: int, app: AppDeployment, sink: HttpSink) -> Path:
    head = e2e_config_head(
        tmp_path, port, sink.port, defaults="window: 1m, bake_time: 1s, cooldown: 1m"
    )
    path = tmp_path / "watchdogd.yaml"
    path.write_text(f"""\
{head}targets:
  - name: shop
    container: {app.name}
    checks:
      - {{name: health, type: http, url: "{app.url}/cgi-bin/health",
         interval: 250ms, timeout: 1s}}
    gates:
      - {{check: health, metric: error_rate, above: 1%}}
    playbook:
      - rollback: {{}}
""")
    return path


def watch_good_release(
    app: AppDeployment, image: str, daemons: Daemons, config: Path
) -> DaemonProcess:
    """``image`` deployed, and a daemon that found it healthy."""
    app.start(image)
    daemon = daemons.start(config)
    daemon.wait_state("shop", "healthy", timeout=60)
    return daemon


def test_a_docker_restart_of_a_good_release_is_not_rolled_back(
    app_images: AppImages,
    app_deployment: AppDeployment,
    daemons: Daemons,
    http_sink: HttpSink,
    tmp_path: Path,
) -> None:
    app = app_deployment
    app.settings["environment"]["APP_BOOT_SECONDS"] = str(BOOT_SECONDS)
    daemon = watch_good_release(
        app, app_images.v1, daemons, config(tmp_path, daemons.port, app, http_sink)
    )

    app.client.api.restart(app.name, timeout=5)
    started = wait_event(daemon, "started_again", timeout=30)
    wait_http(f"{app.url}/cgi-bin/health", 30)
    grace = float(started["data"]["grace_seconds"])
    time.sleep(grace + 1.0)  # past the grace, judged again on fresh windows
    after_grace = daemon.wait_state("shop", "healthy", timeout=60)

    # A breach would have been refused (v1 is the only known-good release), and said so.
    assert events(daemon, "rollback_refused") == [], after_grace
    assert events(daemon, "incident_started") == [], after_grace
    assert after_grace["current_release"]["image_ref"] == app_images.v1
    assert grace > BOOT_SECONDS


def test_a_docker_stop_of_a_good_release_is_left_stopped(
    app_images: AppImages,
    app_deployment: AppDeployment,
    daemons: Daemons,
    http_sink: HttpSink,
    tmp_path: Path,
) -> None:
    app = app_deployment
    daemon = watch_good_release(
        app, app_images.v1, daemons, config(tmp_path, daemons.port, app, http_sink)
    )
    app.redeploy(app_images.v2)  # two known-good releases: a rollback has somewhere to go
    wait_event(daemon, "new_release", timeout=30)
    assert daemon.wait_state("shop", "healthy", timeout=60)["current_release"]["image_ref"] == (
        app_images.v2
    )

    app.client.api.stop(app.name, timeout=5)
    wait_event(daemon, "held_by_somebody", timeout=30)
    time.sleep(5.0)  # about 20 refused probes: "hard down" many times over
    stopped = daemon.get("/api/v1/targets/shop").json()
    assert events(daemon, "incident_started") == [], stopped
    assert events(daemon, "rollback_refused") == [], stopped
    assert app.client.api.inspect_container(app.name)["State"]["Status"] == "exited"

    app.client.api.start(app.name)
    wait_event(daemon, "started_again", timeout=30)
    after = daemon.wait_state("shop", "healthy", timeout=60)
    assert events(daemon, "incident_started") == [], after
    assert after["current_release"]["image_ref"] == app_images.v2
