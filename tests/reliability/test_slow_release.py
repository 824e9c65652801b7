"""A release turns slow on a real engine: latency from about 50 ms to 3 s, probed every second.

The figure ``benchmarks/decision_sim.py`` simulates ("latency 50 ms -> 3 s at one probe a
second"), measured end to end: the test app in the private engine, the daemon as a process, its
http probe (overlapping probes, a waiting probe counting as "at least 2 s"), its recorder and
its ``latency_p95 above 2s`` gate. The detection time is printed as a figure, never asserted:
the machine's load decides it as much as the code. What is asserted is the behaviour: the gate
breaches on the slow answers, not on failures (the 5 s timeout is never reached), and with
``auto_rollback: false`` the breach is recorded and refused.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import audit_kinds, check, gate, wait_for
from tests.support.daemon import DaemonProcess, daemon_yaml, start_daemon
from tests.support.images import AppImages, RunningApp, run_app, set_mode
from tests.support.ports import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def app(docker_engine: Any, app_images: AppImages) -> Iterator[RunningApp]:
    running = run_app(docker_engine, app_images.v1, environment={"APP_SLOW_SECONDS": "3"})
    yield running
    with contextlib.suppress(Exception):
        running.container.remove(force=True)


@pytest.fixture
def daemon(tmp_path: Path, app: RunningApp) -> Iterator[DaemonProcess]:
    port = free_port()
    config = tmp_path / "watchdogd.yaml"
    head = daemon_yaml(
        port,
        tmp_path / "state",
        docker="poll_interval: 1s",
        # A 30 s window keeps CI's time: the slow answers are caught by the fast path for a
        # run of slow answers, which does not depend on the window's length.
        defaults="bake_time: 2s, window: 30s, auto_rollback: false",
    )
    config.write_text(
        head
        + f"""\
targets:
  - name: api
    container: {app.container.name}
    checks:
      - {{name: api, type: http, url: "{app.url}/cgi-bin/api", interval: 1s, timeout: 5s}}
    gates:
      - {{check: api, metric: latency_p95, above: 2s}}
"""
    )
    process = start_daemon(config, port, tmp_path)
    process.wait_ready()
    yield process
    process.stop()


class TestSlowRelease:
    def test_latency_step_is_caught_by_the_slow_fast_path(
        self, daemon: DaemonProcess, app: RunningApp
    ) -> None:
        """50 ms -> 3 s: the latency gate breaches on slow answers, before any timeout."""
        daemon.wait_state("api", "healthy")
        # A full window of fast answers first, as in the simulation.
        wait_for(
            "a full window of fast probes",
            lambda: (check(daemon, "api", "api")["requests"] or 0) >= 30,
            daemon,
            timeout=120.0,
        )
        assert gate(daemon, "api", "api:latency_p95")["verdict"] == "ok"
        set_mode(app.container, "slow")
        switched = time.monotonic()
        wait_for(
            "the latency gate to breach",
            lambda: gate(daemon, "api", "api:latency_p95")["verdict"] == "breached",
            daemon,
        )
        detected = time.monotonic() - switched  # polled every 0.2 s
        breach = gate(daemon, "api", "api:latency_p95")
        # The implied failure gate of the http check stays ok: nothing failed or timed out.
        assert gate(daemon, "api", "api:failure_rate")["verdict"] == "ok"
        print(
            f"\nreliability figure: latency 50 ms -> 3 s at one probe a second (5 s timeout, "
            f"window 30 s): latency_p95 > 2 s breached {detected:.1f} s after the switch; "
            f"reason: {breach['reason']}"
        )
        assert "above 2 s" in breach["reason"] or "> 2 s" in breach["reason"]
        wait_for(
            "the refused rollback to be audited",
            lambda: "rollback_refused" in audit_kinds(daemon),
            daemon,
        )
        assert daemon.target("api")["state"] == "breached"
