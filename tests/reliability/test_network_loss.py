"""The probed network disappears: the app containers are disconnected from the user network
watchdogd reaches them through, then connected again.

What watchdogd makes of it depends on the check, by design (docs/signals-and-gates.md):

* an ``http`` check reaches the target's own address. Nothing answering there is the target
  being down for its users too, so it is a failure: the gate breaches (here with
  ``auto_rollback: false``, so the breach is recorded and refused, and clears once the
  network is back);
* a ``scrape`` of the app's ``/metrics`` that cannot be fetched is ``unknown``: a broken
  metrics endpoint is not a broken release, and the http or container checks catch a down
  app. The gate goes unknown and the target stays healthy.

A container's networks are part of its configuration fingerprint, so the disconnected
container is a new release to watchdogd (it bakes again) and the reconnected one is the
known-good release back (its bake passes at once). With ``auto_rollback`` on, the http breach
would roll the container back to that known-good configuration, network included.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from docker.errors import APIError

from tests.reliability.conftest import audit_kinds, check, gate, wait_for
from tests.support import docker_labels, unique_name
from tests.support.daemon import DaemonProcess, daemon_yaml, start_daemon
from tests.support.images import AppImages, wait_http
from tests.support.ports import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@dataclass
class NetworkedApp:
    container: Any
    ip: str

    @property
    def url(self) -> str:
        return f"http://{self.ip}:8080"


def _network(client: Any) -> Any:
    """A user bridge network with its own subnet, so a container gets its address back when it
    is connected again (static addresses need a configured subnet)."""
    for _ in range(20):
        subnet = f"10.213.{random.randrange(256)}.0/24"
        pool = {"Subnet": subnet, "Gateway": subnet.replace(".0/24", ".1")}
        try:
            return client.networks.create(
                unique_name("wdt-net"),
                driver="bridge",
                ipam={"Driver": "default", "Config": [pool]},
                labels=docker_labels(),
            )
        except APIError as err:
            if "overlap" not in str(err):
                raise
    raise AssertionError("no free 10.213.x.0/24 subnet")


@pytest.fixture
def network(docker_engine: Any) -> Iterator[Any]:
    created = _network(docker_engine)
    yield created
    with contextlib.suppress(APIError):
        created.reload()
        for container in created.containers:
            created.disconnect(container, force=True)
        created.remove()


@pytest.fixture
def apps(docker_engine: Any, app_images: AppImages, network: Any) -> Iterator[list[NetworkedApp]]:
    started: list[NetworkedApp] = []
    try:
        for _ in range(2):
            container = docker_engine.containers.run(
                app_images.v1,
                name=unique_name("wdt-netapp"),
                detach=True,
                network=network.name,
                labels=docker_labels(),
            )
            container.reload()
            ip = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
            started.append(NetworkedApp(container, ip))
            wait_http(f"http://{ip}:8080/cgi-bin/version")
        yield started
    finally:
        for app in started:
            with contextlib.suppress(APIError):
                app.container.remove(force=True)


class Traffic(threading.Thread):
    """Users of the scraped app: ten requests a second, so its /metrics counters move."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=0.5, trust_env=False) as client:
            while not self.halt.wait(0.1):
                with contextlib.suppress(httpx.HTTPError):
                    client.get(self.url)


@pytest.fixture
def daemon(tmp_path: Path, apps: list[NetworkedApp]) -> Iterator[DaemonProcess]:
    probed, scraped = apps
    port = free_port()
    config = tmp_path / "watchdogd.yaml"
    head = daemon_yaml(
        port,
        tmp_path / "state",
        docker="poll_interval: 1s",
        defaults="bake_time: 2s, window: 1m, auto_rollback: false",
    )
    config.write_text(
        head
        + f"""\
targets:
  - name: probed
    container: {probed.container.name}
    checks:
      - {{name: api, type: http, url: "{probed.url}/cgi-bin/api", interval: 300ms, timeout: 1s}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
  - name: scraped
    container: {scraped.container.name}
    checks:
      - {{name: traffic, type: scrape, url: "{scraped.url}/cgi-bin/metrics", interval: 500ms,
         timeout: 1s, requests: http_requests_total,
         errors: 'http_requests_total{{status=~"5.."}}'}}
    gates:
      - {{check: traffic, metric: error_rate, above: 1%}}
"""
    )
    process = start_daemon(config, port, tmp_path)
    process.wait_ready()
    yield process
    process.stop()


class TestProbedNetworkDisappears:
    def test_http_check_breaches_and_scrape_goes_unknown(
        self, daemon: DaemonProcess, apps: list[NetworkedApp], network: Any
    ) -> None:
        """Disconnected: http breaches, scrape is unknown; connected again: both recover."""
        scraped = apps[1]
        traffic = Traffic(f"{scraped.url}/cgi-bin/api")
        traffic.start()
        try:
            for target in ("probed", "scraped"):
                daemon.wait_state(target, "healthy")
            wait_for(
                "the scrape gate to judge the traffic",
                lambda: gate(daemon, "scraped", "traffic:error_rate")["verdict"] == "ok",
                daemon,
            )
            for app in apps:
                network.disconnect(app.container, force=True)
            cut = time.monotonic()

            wait_for(
                "the http gate to breach",
                lambda: gate(daemon, "probed", "api:error_rate")["verdict"] == "breached",
                daemon,
            )
            breached_after = time.monotonic() - cut
            assert daemon.target("probed")["state"] == "breached"
            wait_for(
                "the scrape source to go unknown",
                lambda: not check(daemon, "scraped", "traffic")["source_up"],
                daemon,
            )
            wait_for(
                "the scrape gate to go unknown",
                lambda: gate(daemon, "scraped", "traffic:error_rate")["verdict"] == "unknown",
                daemon,
            )
            unknown_after = time.monotonic() - cut
            # Baking while the disconnected configuration is new (see the module docstring).
            assert daemon.target("scraped")["state"] in ("healthy", "baking")
            assert daemon.metric('watchdogd_source_up{check="traffic",target="scraped"}') == 0.0

            for app in apps:
                network.connect(app.container, ipv4_address=app.ip)
            back = time.monotonic()
            daemon.wait_state("probed", "healthy")
            healthy_after = time.monotonic() - back
            wait_for(
                "the scrape source to see its target again",
                lambda: check(daemon, "scraped", "traffic")["source_up"],
                daemon,
            )
            daemon.wait_state("scraped", "healthy")
        finally:
            traffic.halt.set()
            traffic.join()
        print(
            f"\nreliability figure: network loss: http gate breached {breached_after:.1f} s, "
            f"scrape gate unknown {unknown_after:.1f} s after the disconnect; the probed target "
            f"healthy {healthy_after:.1f} s after the reconnect"
        )
        refused = [
            e
            for e in daemon.get("/api/v1/events?limit=200").json()["events"]
            if e["kind"] == "rollback_refused"
        ]
        assert {e["target"] for e in refused} == {"probed"}
        assert "incident_started" not in audit_kinds(daemon)
        assert daemon.metric("watchdogd_rollbacks_total") is None
