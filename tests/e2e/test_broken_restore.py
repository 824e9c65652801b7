"""A restored release that is itself broken, on a real Docker engine: ``wait_healthy`` judges
the restored container's own health and probes, fails, and the target is frozen with a
notification (issue #13, "Fixed by the new seams").

The app reads its mode from ``/tmp/mode``, here a host directory bind-mounted into every
container of the app, so the restore recreates v1 with it. A ``command`` step before the
rollback writes ``500`` there: the known-good release comes back broken, as when a downgrade
left the database in a state the old code cannot use.

The daemon is pointed at ``DOCKER_HOST`` when it is set (a private engine), not at the
default socket.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import AppDeployment, Daemons, e2e_config_head, events, wait_event
from tests.support import unique_name
from tests.support.images import AppImages, wait_http
from tests.support.ports import free_port
from tests.support.sink import HttpSink

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def shared_mode(tmp_path: Path) -> Path:
    directory = tmp_path / "app-tmp"
    directory.mkdir()
    directory.chmod(0o1777)
    return directory


@pytest.fixture
def app(docker_engine: Any, shared_mode: Path) -> Any:
    port = free_port()
    settings: dict[str, Any] = {
        "environment": {},
        "labels": {},
        "extra": {
            "ports": {"8080/tcp": ("127.0.0.1", port)},
            "volumes": {str(shared_mode): {"bind": "/tmp", "mode": "rw"}},
        },
    }
    deployment = AppDeployment(
        docker_engine, unique_name("wdt-broken"), port, "none-network", "none-volume", settings
    )
    yield deployment
    deployment.cleanup()


def write_config(
    directory: Path, *, port: int, app: AppDeployment, sink: HttpSink, mode: Path
) -> Path:
    config = directory / "watchdogd.yaml"
    defaults = "window: 1m, bake_time: 2s, cooldown: 5m, stop_timeout: 2s"
    head = e2e_config_head(directory, port, sink.port, defaults=defaults)
    config.write_text(f"""\
{head}targets:
  - name: shop
    container: {app.name}
    checks:
      - {{name: health, type: container_health}}
      - {{name: api, type: http, url: "{app.url}/cgi-bin/api", interval: 300ms, timeout: 2s}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
    playbook:
      - command: {{command: [/bin/sh, -c, "echo 500 > {mode / "mode"}"]}}
      - rollback: {{}}
      - wait_healthy: {{timeout: 10s}}
""")
    return config


class TestBrokenRestore:
    def test_wait_healthy_fails_and_the_target_is_frozen(
        self,
        app_images: AppImages,
        app: AppDeployment,
        daemons: Daemons,
        http_sink: HttpSink,
        shared_mode: Path,
        tmp_path: Path,
    ) -> None:
        app.start(app_images.v1)
        config = write_config(
            tmp_path, port=daemons.port, app=app, sink=http_sink, mode=shared_mode
        )
        daemon = daemons.start(config)
        daemon.wait_state("shop", "healthy", timeout=60)

        app.redeploy(app_images.v2)  # answers 500: the gate breaches, the playbook runs

        finished = wait_event(daemon, "incident_finished", timeout=90)
        assert "failed" in finished["message"], finished
        failed = [
            e for e in events(daemon, "step_failed") if e["incident_id"] == finished["incident_id"]
        ]
        assert [e["data"]["action"] for e in failed] == ["wait_healthy"], failed
        status = daemon.wait_state("shop", "frozen", timeout=30)
        # The rollback itself happened: v1 runs again, with the bind mount, and answers 500.
        assert status["incident"] is None
        assert wait_http(f"{app.url}/cgi-bin/version", 15).text.strip() == "v1"
        assert (shared_mode / "mode").read_text().strip() == "500"
        told = http_sink.wait_for(
            lambda r: r.path == "/hook" and r.json().get("event") == "target_frozen", timeout=30
        )
        assert "failed" in told.json()["message"]
        assert "Traceback" not in daemon.log.read_text()
