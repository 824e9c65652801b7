"""make_driver picks the driver by kind and touches Docker only for Docker kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from watchdogd.config.schema import DockerSettings, TargetConfig
from watchdogd.config.validation import parse
from watchdogd.engine.docker_api import DockerEngine
from watchdogd.errors import TargetError
from watchdogd.targets.compose import ComposeDriver
from watchdogd.targets.container import ContainerDriver
from watchdogd.targets.factory import engine_factory, make_driver
from watchdogd.targets.release_dir import ReleaseDirDriver
from watchdogd.targets.swarm import SwarmDriver


def no_docker() -> DockerEngine:
    raise AssertionError("a release_dir target must not need Docker")


def target(**fields: Any) -> TargetConfig:
    return parse(TargetConfig, {"name": "app", **fields})


class TestMakeDriver:
    def test_container(self) -> None:
        engine = DockerEngine()
        driver = make_driver(target(container="web"), lambda: engine)
        assert isinstance(driver, ContainerDriver)
        assert (driver.target, driver.container, driver.engine) == ("app", "web", engine)

    def test_compose(self) -> None:
        engine = DockerEngine()
        driver = make_driver(target(compose={"project": "shop", "service": "web"}), lambda: engine)
        assert isinstance(driver, ComposeDriver)
        assert (driver.project, driver.service) == ("shop", "web")

    def test_release_dir_needs_no_docker(self, tmp_path: Path) -> None:
        config = target(release_dir={"path": str(tmp_path), "restart": ["true"]})
        driver = make_driver(config, no_docker)
        assert isinstance(driver, ReleaseDirDriver)
        assert driver.link == tmp_path / "current"
        assert driver.restart_command == ["true"]

    def test_swarm(self) -> None:
        engine = DockerEngine()
        driver = make_driver(target(swarm={"service": "web"}), lambda: engine)
        assert isinstance(driver, SwarmDriver)
        assert (driver.service, driver.engine) == ("web", engine)


class TestEngineFactory:
    def test_one_engine_shared_and_built_without_touching_the_socket(self) -> None:
        """The engine connects lazily: a bogus host is fine until the first call."""
        factory = engine_factory(DockerSettings(host="unix:///nonexistent.sock", timeout=1.0))
        assert factory() is factory()
        assert factory().host == "unix:///nonexistent.sock"

    async def test_an_unreachable_engine_is_a_target_error(self) -> None:
        engine = engine_factory(DockerSettings(host="unix:///nonexistent.sock", timeout=1.0))()
        with pytest.raises(TargetError):
            await ContainerDriver("app", "web", engine).current()
