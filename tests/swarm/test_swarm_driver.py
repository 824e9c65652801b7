"""The swarm driver against a real single-node swarm: releases, both ways of restoring one,
the version compare-and-swap, and health from the tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.images import AppImages
from tests.swarm.conftest import Services
from watchdogd.engine.docker_api import DockerEngine
from watchdogd.targets.swarm import SwarmDriver

pytestmark = [pytest.mark.docker, pytest.mark.swarm]


@pytest.fixture
def engine() -> Iterator[DockerEngine]:
    engine = DockerEngine()
    yield engine
    engine.close()


def image_of(spec: dict[str, Any]) -> str:
    return str(spec["TaskTemplate"]["ContainerSpec"]["Image"])


class TestRelease:
    async def test_release_is_the_local_image_and_the_spec_fingerprint(
        self, services: Services, app_images: AppImages, engine: DockerEngine
    ) -> None:
        """Without a registry digest the image is the local image ID; a label change keeps the
        release, an env change makes a new one."""
        name = services.create(app_images.v1, replicas=1)
        driver = SwarmDriver("web", name, engine)
        first = await driver.current()
        assert first is not None
        assert (first.image, first.image_ref) == (app_images.ids["v1"], app_images.v1)
        assert first.spec["TaskTemplate"]["ContainerSpec"]["Image"] == app_images.v1

        service = services.inspect(name)
        spec = dict(service["Spec"], Labels={**service["Spec"]["Labels"], "team": "shop"})
        await driver.api.update_service(service, spec)
        same = await driver.current()
        assert same is not None
        assert same.id == first.id

        services.update(name, Env=["FEATURE=on"])
        changed = await driver.current()
        assert changed is not None
        assert changed.image == first.image
        assert changed.id != first.id

    async def test_a_missing_service_runs_nothing(self, swarm: Any, engine: DockerEngine) -> None:
        """No service of that name: ``current`` is None and ``healthy`` False."""
        driver = SwarmDriver("web", "wdt-no-such-service", engine)
        assert await driver.current() is None
        assert await driver.healthy() is False


class TestRestore:
    async def test_previous_spec_is_rolled_back_once(
        self, services: Services, app_images: AppImages, engine: DockerEngine
    ) -> None:
        """PreviousSpec is the release: Swarm's rollback=previous, and a second restore posts
        nothing (a second rollback would flip back into the bad spec)."""
        name = services.create(app_images.v1)
        driver = SwarmDriver("web", name, engine)
        services.wait_running(name, app_images.v1)
        good = await driver.current()
        assert good is not None
        services.update(name, app_images.v2)

        await driver.restore(good, stop_timeout=1)

        service = services.inspect(name)
        assert service["UpdateStatus"]["State"] == "rollback_completed"
        assert image_of(service["Spec"]) == app_images.v1
        assert image_of(service["PreviousSpec"]) == app_images.v2
        assert services.versions(name) == ["v1", "v1", "v1"]
        version = service["Version"]["Index"]
        await driver.restore(good, stop_timeout=1)
        assert services.inspect(name)["Version"]["Index"] == version

    async def test_spec_update_when_previous_spec_is_not_the_release(
        self, services: Services, app_images: AppImages, engine: DockerEngine
    ) -> None:
        """Two deploys since the release: its recorded task template is posted as an update."""
        name = services.create(app_images.v1, Env=["FEATURE=off"])
        driver = SwarmDriver("web", name, engine)
        services.wait_running(name, app_images.v1)
        good = await driver.current()
        assert good is not None
        services.update(name, app_images.v2)
        services.update(name, Env=["FEATURE=on"])

        await driver.restore(good, stop_timeout=1)

        service = services.inspect(name)
        assert service["UpdateStatus"]["State"] == "completed"
        assert image_of(service["Spec"]) == app_images.v1
        assert service["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"] == ["FEATURE=off"]
        restored = await driver.current()
        assert restored is not None
        assert restored.id == good.id
        assert services.versions(name) == ["v1", "v1", "v1"]

    async def test_a_moved_tag_is_pinned_to_the_release_image(
        self, services: Services, app_images: AppImages, engine: DockerEngine, swarm: Any
    ) -> None:
        """The service runs ``:live``, which now names the bad image: the restore pins the
        release's image ID instead of the tag."""
        live = f"{app_images.repo}:live"
        swarm.api.tag(app_images.v1, app_images.repo, "live")
        try:
            name = services.create(live, replicas=1)
            driver = SwarmDriver("web", name, engine)
            services.wait_running(name, live, count=1)
            good = await driver.current()
            assert good is not None
            swarm.api.tag(app_images.v2, app_images.repo, "live")
            services.update(name, Env=["REDEPLOY=1"])

            await driver.restore(good, stop_timeout=1)

            spec = services.inspect(name)["Spec"]
            assert image_of(spec) == app_images.ids["v1"]
            assert services.versions(name) == ["v1"]
        finally:
            swarm.api.remove_image(live)

    async def test_two_restores_at_once_roll_back_once(
        self, services: Services, app_images: AppImages
    ) -> None:
        """Two drivers (two watchdogd) restore together: the version compare-and-swap lets one
        write through; the other re-reads, finds the release in place and posts nothing."""
        name = services.create(app_images.v1)
        engines = [DockerEngine(), DockerEngine()]
        try:
            drivers = [SwarmDriver("web", name, e) for e in engines]
            services.wait_running(name, app_images.v1)
            good = await drivers[0].current()
            assert good is not None
            services.update(name, app_images.v2)

            await asyncio.gather(*(d.restore(good, stop_timeout=1) for d in drivers))
        finally:
            for engine in engines:
                engine.close()

        service = services.inspect(name)
        assert image_of(service["Spec"]) == app_images.v1
        assert image_of(service["PreviousSpec"]) == app_images.v2


class TestHealth:
    async def test_healthy_once_every_replica_runs(
        self, services: Services, app_images: AppImages, engine: DockerEngine
    ) -> None:
        """Every replica running (healthcheck passed): True, and exec reaches one; a paused
        update: False."""
        name = services.create(app_images.v1)
        driver = SwarmDriver("web", name, engine)
        services.wait_running(name, app_images.v1)
        assert await driver.healthy() is True
        result = await driver.exec(["sh", "-c", "echo $APP_VERSION"])
        assert (result.exit_code, result.output.strip()) == (0, "v1")

        service = services.inspect(name)
        spec = service["Spec"]
        spec["TaskTemplate"]["ContainerSpec"]["Image"] = app_images.v2
        spec["UpdateConfig"] = {"Parallelism": 1, "FailureAction": "pause", "Monitor": 5 * 10**9}
        await driver.api.update_service(service, spec)
        deadline = asyncio.get_running_loop().time() + 60
        while (services.inspect(name).get("UpdateStatus") or {}).get("State") != "paused":
            assert asyncio.get_running_loop().time() < deadline, services.inspect(name)
            await asyncio.sleep(0.3)
        assert await driver.healthy() is False
