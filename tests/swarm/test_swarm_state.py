"""The state kept in Swarm, against a real swarm: two mirrors stand for two watchdogd
instances (each with its own SQLite store), writing one config under its version."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.images import AppImages
from tests.swarm.conftest import Services
from watchdogd.config.steps import Step
from watchdogd.config.validation import parse
from watchdogd.engine.docker_api import DockerEngine
from watchdogd.errors import ClaimLost
from watchdogd.model import Release, Trigger, TriggerKind
from watchdogd.playbook.plan import IncidentPlan
from watchdogd.store import StepStatus, Store
from watchdogd.targets.swarm import SwarmDriver
from watchdogd.watch.swarm_state import SwarmStateMirror

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

STEPS = [parse(Step, {"rollback": {}}), parse(Step, {"wait_healthy": {}})]
MakeMirror = Callable[..., SwarmStateMirror]


@pytest.fixture
async def make_mirror(tmp_path: Path) -> AsyncIterator[MakeMirror]:
    """``make(service, store_name, **options)``: a mirror with its own engine and store."""
    made: list[tuple[SwarmStateMirror, DockerEngine, Store]] = []

    def make(service: str, store_name: str, **options: Any) -> SwarmStateMirror:
        engine, store = DockerEngine(), Store.in_state_dir(tmp_path / store_name)
        mirror = SwarmStateMirror("web", SwarmDriver("web", service, engine), store, **options)
        made.append((mirror, engine, store))
        return mirror

    yield make
    for mirror, engine, store in made:
        await mirror.close()
        engine.close()
        store.close()


def plan(bad: Release | None, good: Release | None) -> IncidentPlan:
    trigger = Trigger(TriggerKind.GATE, "tasks:unhealthy", "every replica fails")
    return IncidentPlan.new(
        target="web", trigger=trigger, bad_release=bad, restore_release=good, steps=STEPS
    )


async def deployed(services: Services, app_images: AppImages) -> tuple[str, Release, Release]:
    """A service deployed with v1, then v2 (not waited for): its name and both releases."""
    name = services.create(app_images.v1, replicas=1)
    driver = SwarmDriver("web", name, DockerEngine())
    try:
        good = await driver.current()
        services.update(name, app_images.v2)
        bad = await driver.current()
    finally:
        driver.engine.close()
    assert good is not None
    assert bad is not None
    return name, good, bad


class TestKeptState:
    async def test_an_empty_store_is_filled_from_swarm(
        self, services: Services, app_images: AppImages, make_mirror: MakeMirror
    ) -> None:
        """Known-good and the quarantine written by one instance reach a new, empty one."""
        name, good, bad = await deployed(services, app_images)
        first = make_mirror(name, "first")
        await first.known_good(good)
        incident = plan(bad, good)
        assert await first.claim(incident, manual=False) is None
        await first.finished(incident, succeeded=True, detail="playbook completed")

        kept = services.state(name)
        assert kept["incident"] is None
        assert [(h["id"], h["state"]) for h in kept["history"]] == [
            (incident.incident_id, "succeeded")
        ]
        fresh = make_mirror(name, "fresh")
        await fresh.restore()
        record = fresh.store.newest_known_good("web")
        assert record is not None
        assert record.release.id == good.id
        assert record.release.spec["TaskTemplate"] == good.spec["TaskTemplate"]
        assert fresh.store.is_quarantined("web", bad.image)

    async def test_concurrent_writes_all_land(
        self, services: Services, app_images: AppImages, make_mirror: MakeMirror
    ) -> None:
        """Writes from two instances at once: the loser of each race re-reads and writes
        again, so nothing is lost."""
        name = services.create(app_images.v1, replicas=1)
        mirrors = [make_mirror(name, "a"), make_mirror(name, "b")]
        releases = [Release("web", f"sha256:{n:064x}", f"{n:016x}") for n in range(4)]
        await asyncio.gather(
            *(mirrors[n % 2].known_good(release) for n, release in enumerate(releases))
        )
        kept = {entry["release"]["id"] for entry in services.state(name)["known_good"]}
        assert kept == {release.id for release in releases}


class TestClaims:
    async def test_only_one_of_two_claims_wins(
        self, services: Services, app_images: AppImages, make_mirror: MakeMirror
    ) -> None:
        """Two instances claim the same breach at once: one gets it, the other is told who."""
        name, good, bad = await deployed(services, app_images)
        mirrors = [make_mirror(name, "a"), make_mirror(name, "b")]
        answers = await asyncio.gather(*(m.claim(plan(bad, good), manual=False) for m in mirrors))
        assert sorted(answer is None for answer in answers) == [False, True]
        winner = mirrors[answers.index(None)]
        refusal = next(answer for answer in answers if answer is not None)
        assert f"being handled by watchdogd {winner.owner}" in refusal

    async def test_a_service_that_changed_is_not_claimed(
        self, services: Services, app_images: AppImages, make_mirror: MakeMirror
    ) -> None:
        """The bad release no longer runs (someone rolled back already): no claim."""
        name, good, _bad = await deployed(services, app_images)
        answer = await make_mirror(name, "a").claim(plan(good, good), manual=False)
        assert answer is not None
        assert "no longer runs" in answer

    async def test_a_failed_incident_blocks_automatic_claims_only(
        self, services: Services, app_images: AppImages, make_mirror: MakeMirror
    ) -> None:
        """After one instance failed on a release, the other does not try automatically; an
        operator's rollback still goes through."""
        name, good, bad = await deployed(services, app_images)
        first, second = make_mirror(name, "a"), make_mirror(name, "b")
        failed = plan(bad, good)
        assert await first.claim(failed, manual=False) is None
        await first.finished(failed, succeeded=False, detail="playbook failed")

        answer = await second.claim(plan(bad, good), manual=False)
        assert answer is not None
        assert f"failed on watchdogd {first.owner}" in answer
        assert await second.claim(plan(bad, good), manual=True) is None


class TestTakeOver:
    async def test_a_dead_owner_is_taken_over_with_its_journal(
        self, services: Services, app_images: AppImages, make_mirror: MakeMirror
    ) -> None:
        """The owner stops renewing (killed): a new instance with an empty store waits out the
        lease, takes the incident with its journal, and the old owner may not go on."""
        name, good, bad = await deployed(services, app_images)
        owner = make_mirror(name, "old", lease=1.0, renew_every=3600)
        incident = plan(bad, good)
        assert await owner.claim(incident, manual=False) is None
        owner.store.create_incident(
            incident_id=incident.incident_id,
            target="web",
            trigger=incident.trigger,
            bad_release=bad,
            restore_release=good,
            actions=incident.actions,
        )
        owner.store.step_started(incident.incident_id, 0, "rollback")
        await owner.before_step(0, STEPS[0])

        heir = make_mirror(name, "new", lease=1.0)
        await heir.restore()

        [record] = heir.store.open_incidents("web")
        assert (record.id, record.restore_release, record.actions) == (
            incident.incident_id,
            good,
            ("rollback", "wait_healthy"),
        )
        [entry] = heir.store.journal_for(incident.incident_id)
        assert (entry.action, entry.status) == ("rollback", StepStatus.STARTED)
        assert services.state(name)["incident"]["owner"] == heir.owner
        with pytest.raises(ClaimLost):
            await owner.before_step(1, STEPS[1])

    async def test_a_live_owner_keeps_its_incident(
        self, services: Services, app_images: AppImages, make_mirror: MakeMirror
    ) -> None:
        """The owner renews its lease: a new instance waits once, then leaves it alone."""
        name, good, bad = await deployed(services, app_images)
        owner = make_mirror(name, "old", lease=1.5, renew_every=0.3)
        incident = plan(bad, good)
        assert await owner.claim(incident, manual=False) is None

        other = make_mirror(name, "other", lease=1.5)
        await other.restore()

        assert other.store.open_incidents("web") == []
        assert services.state(name)["incident"]["owner"] == owner.owner
        await owner.before_step(0, STEPS[0])  # still its own
