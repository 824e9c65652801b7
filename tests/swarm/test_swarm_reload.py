"""A Swarm target added by a reload (SIGHUP) starts from the state kept in Swarm, as one
present at start does: another watchdogd rolled v2 back and quarantined it; this daemon, which
never saw the service, gains the target by a reload and refuses v2 at once, restoring v1 from
the known-good release it found in Swarm (v1 never baked under this daemon's eyes)."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import TOKEN, DaemonProcess, start_daemon
from tests.support.images import AppImages
from tests.support.ports import free_port
from tests.support.waiting import wait_for
from tests.swarm.conftest import Services
from tests.swarm.test_swarm_state import plan
from watchdogd.engine.docker_api import DEFAULT_HOST, DockerEngine
from watchdogd.store import Store
from watchdogd.targets.swarm import SwarmDriver
from watchdogd.watch.swarm_state import SwarmStateMirror

pytestmark = [pytest.mark.docker, pytest.mark.swarm, pytest.mark.slow]

# The engine the tests' client uses (a private one when DOCKER_HOST is set).
DOCKER_HOST = os.environ.get("DOCKER_HOST", DEFAULT_HOST)


def config_text(port: int, state: Path, service: str | None) -> str:
    # A long bake: within this test v1 is never judged good by this daemon itself.
    target = f"""\
  - name: web
    swarm: {{service: {service}}}
    checks:
      - {{name: tasks, type: container_health, interval: 500ms}}
    gates:
      - {{check: tasks, metric: unhealthy}}
    playbook:
      - rollback: {{}}
      - wait_healthy: {{timeout: 30s}}
"""
    return f"""\
listen: 127.0.0.1:{port}
api_token: {TOKEN}
state_dir: {state}
log: {{format: json, level: info}}
docker: {{host: "{DOCKER_HOST}", poll_interval: 500ms}}
defaults: {{window: 1m, bake_time: 10m, cooldown: 1m}}
targets:
{target if service else "  []"}
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A daemon with no target yet."""
    port = free_port()
    config = tmp_path / "watchdogd.yaml"
    config.write_text(config_text(port, tmp_path / "state", None))
    process = start_daemon(config, port, tmp_path)
    process.wait_ready(timeout=40)
    yield process
    if process.process.poll() is None:
        os.killpg(process.process.pid, signal.SIGKILL)
        process.process.wait()


@pytest.fixture
async def other_instance(tmp_path: Path) -> AsyncIterator[tuple[DockerEngine, Store]]:
    """The engine and store of another watchdogd instance."""
    engine, store = DockerEngine(DOCKER_HOST), Store.in_state_dir(tmp_path / "other")
    yield engine, store
    engine.close()
    store.close()


async def test_a_swarm_target_added_by_reload_is_restored_from_swarm(
    services: Services,
    app_images: AppImages,
    daemon: DaemonProcess,
    other_instance: tuple[DockerEngine, Store],
) -> None:
    name = services.create(app_images.v1, replicas=1)
    services.wait_running(name, app_images.v1, count=1)
    engine, store = other_instance
    driver = SwarmDriver("web", name, engine)
    mirror = SwarmStateMirror("web", driver, store)
    try:
        # The other instance: v1 baked, v2 deployed, rolled back and quarantined.
        good = await driver.current()
        assert good is not None
        await mirror.known_good(good)
        services.update(name, app_images.v2)
        bad = await driver.current()
        assert bad is not None
        incident = plan(bad, good)
        assert await mirror.claim(incident, manual=False) is None
        await mirror.finished(incident, succeeded=True, detail="playbook completed")
    finally:
        await mirror.close()
    services.update(name, app_images.v1)
    services.wait_running(name, app_images.v1, count=1)

    marks = daemon.log.read_text().count("config_reloaded")
    daemon.config.write_text(config_text(daemon.port, daemon.config.parent / "state", name))
    daemon.process.send_signal(signal.SIGHUP)
    wait_for("the reload", lambda: daemon.log.read_text().count("config_reloaded") > marks)

    status = daemon.target("web")
    assert [q["image"] for q in status["quarantined"]] == [app_images.ids["v2"]]
    # v2 again: refused at once as quarantined, and v1 (known-good only in Swarm) restored.
    services.update(name, app_images.v2)
    wait_for(
        "the quarantine rollback",
        lambda: [e for e in events(daemon) if e["kind"] == "incident_finished"],
        timeout=90,
        context=lambda: daemon.log.read_text()[-4000:],
    )
    [finished] = [e for e in events(daemon) if e["kind"] == "incident_finished"]
    assert finished["data"]["state"] == "succeeded"
    [started] = [e for e in events(daemon) if e["kind"] == "incident_started"]
    assert started["data"]["trigger_kind"] == "quarantine"
    services.wait_running(name, app_images.v1, count=1)
    assert services.versions(name) == ["v1"]


def events(daemon: DaemonProcess) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = daemon.get("/api/v1/events?limit=500").json()["events"]
    return found
