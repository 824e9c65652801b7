"""A real Alertmanager delivers to watchdogd's webhook with a bearer token from a file.

An alert posted to Alertmanager's API (v2) whose labels match the target's ``alerts:`` rule
reaches watchdogd, which rolls the release directory back. An Alertmanager holding the wrong
token is refused with 401, and nothing happens.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.services import AlertmanagerFactory, AlertmanagerServer
from tests.support.waiting import wait_for
from tests.surfaces.conftest import (
    TOKEN,
    DaemonFactory,
    ReleaseApp,
    bake_v2,
    events,
    http_client,
    metric_value,
)

pytestmark = pytest.mark.alertmanager

ALERT_LABELS = {"alertname": "AppDown", "service": "app", "severity": "critical"}


def alertmanager_config(daemon: DaemonProcess, token_file: Path) -> str:
    # Short waits so that the first notification leaves within about a second.
    return f"""\
route:
  receiver: watchdogd
  group_by: [alertname, service]
  group_wait: 500ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: watchdogd
    webhook_configs:
      - url: {daemon.url}/hooks/alertmanager
        send_resolved: true
        http_config:
          authorization: {{type: Bearer, credentials_file: {token_file}}}
"""


def post_alert(alertmanager: AlertmanagerServer, labels: dict[str, str]) -> None:
    """Fire an alert through Alertmanager's own API, as Prometheus would."""
    alert = {
        "labels": labels,
        "annotations": {"summary": "the app answers 5xx"},
        "startsAt": datetime.now(UTC).isoformat(),
        "generatorURL": "http://prometheus.example/graph",
    }
    with http_client() as client:
        response = client.post(f"{alertmanager.url}/api/v2/alerts", json=[alert])
    assert response.status_code == 200, response.text


def alertmanager_metric(alertmanager: AlertmanagerServer, prefix: str) -> float:
    with http_client() as client:
        text = client.get(f"{alertmanager.url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


@pytest.fixture
def token_files(tmp_path: Path) -> dict[str, Path]:
    right, wrong = tmp_path / "right.token", tmp_path / "wrong.token"
    right.write_text(TOKEN + "\n")
    wrong.write_text("not-the-token-" + os.urandom(4).hex() + "\n")
    return {"right": right, "wrong": wrong}


@pytest.mark.parametrize("release_app", [{"v2": "ok"}], indirect=True)
class TestAlertmanagerDelivery:
    def test_firing_alert_rolls_the_target_back(
        self,
        daemon_factory: DaemonFactory,
        release_app: ReleaseApp,
        alertmanager_factory: AlertmanagerFactory,
        token_files: dict[str, Path],
    ) -> None:
        """Alertmanager → webhook with the right token → playbook → `current` back on v1."""
        daemon = daemon_factory(release_app, gates=False)
        bake_v2(daemon, release_app)
        alertmanager = alertmanager_factory(alertmanager_config(daemon, token_files["right"]))

        post_alert(alertmanager, ALERT_LABELS)

        status = daemon.wait_state("app", "rolled_back")
        assert release_app.current() == "v1"
        assert status["current_release"]["image"] == "v1"
        started = events(daemon, "incident_started")
        assert len(started) == 1
        assert started[0]["data"]["trigger_kind"] == "alert"
        assert started[0]["data"]["trigger_name"] == "AppDown"
        assert metric_value(daemon, "watchdogd_alerts_received_total", status="firing") == 1.0
        assert (
            metric_value(
                daemon,
                "watchdogd_rollbacks_total",
                target="app",
                trigger="alert",
                result="succeeded",
            )
            == 1.0
        )
        assert TOKEN not in daemon.log.read_text()

    def test_wrong_token_is_refused_and_changes_nothing(
        self,
        daemon_factory: DaemonFactory,
        release_app: ReleaseApp,
        alertmanager_factory: AlertmanagerFactory,
        token_files: dict[str, Path],
    ) -> None:
        """An Alertmanager with the wrong token gets 401; no alert is taken, no incident."""
        daemon = daemon_factory(release_app, gates=False)
        bake_v2(daemon, release_app)
        before = events(daemon)
        alertmanager = alertmanager_factory(alertmanager_config(daemon, token_files["wrong"]))

        post_alert(alertmanager, ALERT_LABELS)

        def refused_twice() -> bool:
            # Alertmanager does not retry a 4xx, but sends the group again each group_interval.
            count = metric_value(daemon, "watchdogd_webhook_rejected_total", reason="unauthorized")
            return (count or 0) >= 2

        wait_for("Alertmanager's deliveries to be refused", refused_twice)
        wait_for(
            "Alertmanager to count its failed notifications",
            lambda: (
                alertmanager_metric(
                    alertmanager, 'alertmanager_notifications_failed_total{integration="webhook"}'
                )
                >= 1
            ),
        )
        status = daemon.target("app")
        assert status["state"] == "healthy"
        assert status["incident"] is None
        assert release_app.current() == "v2"
        assert events(daemon) == before
        assert metric_value(daemon, "watchdogd_alerts_received_total") is None
        assert metric_value(daemon, "watchdogd_rollbacks_total") is None
        assert token_files["wrong"].read_text().strip() not in daemon.log.read_text()
