"""One alert, one rollback: Alertmanager retries, repeats and HA peers resend the same alert
(same fingerprint and startsAt), in any order and at the same time."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import pytest

from tests.surfaces.conftest import (
    TOKEN,
    DaemonFactory,
    ReleaseApp,
    alert_payload,
    bake_v2,
    events,
    metric_value,
)

FINGERPRINT = "4b1d3e5f6a7b8c9d"
STARTS_AT = "2026-03-01T12:00:00Z"


def deliveries(seed: int) -> list[dict[str, Any]]:
    """50 webhook bodies carrying the same firing alert: plain duplicates, the alert inside
    groups with other alerts in varying order, equivalent timestamps written differently, and
    its resolution, all shuffled."""
    rng = random.Random(seed)
    other = alert_payload(
        labels={"alertname": "DiskFull", "service": "db"}, fingerprint="0000aaaa"
    )["alerts"][0]
    bodies: list[dict[str, Any]] = []
    for index in range(50):
        variant = index % 5
        starts_at = STARTS_AT if variant != 3 else "2026-03-01T13:00:00+01:00"  # the same instant
        body = alert_payload(fingerprint=FINGERPRINT, starts_at=starts_at)
        if variant == 1:
            body["alerts"].append(other)
        elif variant == 2:
            body["alerts"].insert(0, other)
        elif variant == 4 and index > 25:
            body = alert_payload(status="resolved", fingerprint=FINGERPRINT, starts_at=STARTS_AT)
        bodies.append(body)
    rng.shuffle(bodies)
    return bodies


async def post_all(
    url: str, bodies: list[dict[str, Any]], concurrent: bool
) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(trust_env=False, timeout=30, limits=limits) as client:

        async def post(body: dict[str, Any]) -> dict[str, Any]:
            response = await client.post(url, content=json.dumps(body), headers=headers)
            assert response.status_code == 200, response.text
            answer: dict[str, Any] = response.json()
            return answer

        if concurrent:
            return list(await asyncio.gather(*(post(body) for body in bodies)))
        return [await post(body) for body in bodies]


@pytest.mark.parametrize("release_app", [{"v2": "ok"}], indirect=True)
class TestOneAlertOneRollback:
    @pytest.mark.parametrize("concurrent", [False, True], ids=["sequential", "concurrent"])
    def test_fifty_deliveries_of_one_alert_roll_back_once(
        self, daemon_factory: DaemonFactory, release_app: ReleaseApp, concurrent: bool
    ) -> None:
        """50 shuffled deliveries (duplicates, regrouped, resolved) start exactly one playbook."""
        daemon = daemon_factory(release_app, gates=False)
        bake_v2(daemon, release_app)

        answers = asyncio.run(
            post_all(f"{daemon.url}/hooks/alertmanager", deliveries(seed=5), concurrent)
        )

        daemon.wait_state("app", "rolled_back")
        started = [p for a in answers for p in a["playbooks"] if "incident" in p]
        assert len(started) == 1, answers
        assert started[0]["target"] == "app"
        assert [e["incident_id"] for e in events(daemon, "incident_started")] == [
            started[0]["incident"]
        ]
        assert events(daemon, "rollback_refused") == []
        # The firing alert, the resolved one and the unrelated one: each accepted once.
        assert sum(a["accepted"] for a in answers) == 3
        assert (
            metric_value(daemon, "watchdogd_rollbacks_total", target="app", trigger="alert") == 1.0
        )
        assert release_app.current() == "v1"

    def test_redelivery_after_the_rollback_changes_nothing(
        self, daemon_factory: DaemonFactory, release_app: ReleaseApp
    ) -> None:
        """The same alert arriving again once the target is rolled back is only a duplicate."""
        daemon = daemon_factory(release_app, gates=False)
        bake_v2(daemon, release_app)
        body = alert_payload(fingerprint=FINGERPRINT, starts_at=STARTS_AT)
        assert len(daemon.post("/hooks/alertmanager", body).json()["playbooks"]) == 1
        daemon.wait_state("app", "rolled_back")
        before = events(daemon)

        answers = asyncio.run(post_all(f"{daemon.url}/hooks/alertmanager", [body] * 20, True))

        assert all(a == {"accepted": 0, "duplicates": 1, "playbooks": []} for a in answers)
        assert events(daemon) == before
        assert daemon.target("app")["state"] == "rolled_back"
