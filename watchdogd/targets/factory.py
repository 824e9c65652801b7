"""From a target's config to its driver.

The daemon builds one ``DockerEngine`` (from ``config.docker``) and passes a factory for it, so
that targets share one connection pool and a daemon whose targets are all release directories
never needs an engine, nor even the docker socket.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from watchdogd.config.schema import DockerSettings, TargetConfig, TargetKind
from watchdogd.errors import TargetError
from watchdogd.targets.base import TargetDriver

if TYPE_CHECKING:
    from watchdogd.engine.docker_api import DockerEngine

# The drivers are imported when a target needs one: the Docker ones bring the Docker SDK
# (about 18 MB and 100 ms at start), which a daemon of release directories never uses.
DockerClientFactory = Callable[[], "DockerEngine"]


def engine_factory(settings: DockerSettings) -> DockerClientFactory:
    """A factory that builds one ``DockerEngine`` on first call and returns it ever after.
    Building it does not touch the engine (the client connects lazily)."""
    engines: list[DockerEngine] = []

    def get() -> DockerEngine:
        from watchdogd.engine.docker_api import DockerEngine  # noqa: PLC0415

        if not engines:
            engines.append(DockerEngine(settings.host, settings.timeout))
        return engines[0]

    return get


def make_driver(target: TargetConfig, docker_client_factory: DockerClientFactory) -> TargetDriver:
    """The driver for ``target``; ``docker_client_factory`` is called only for Docker kinds."""
    if target.kind is TargetKind.CONTAINER and target.container:
        from watchdogd.targets.container import ContainerDriver  # noqa: PLC0415

        return ContainerDriver(target.name, target.container, docker_client_factory())
    if target.kind is TargetKind.COMPOSE and target.compose is not None:
        from watchdogd.targets.compose import ComposeDriver  # noqa: PLC0415

        ref = target.compose
        return ComposeDriver(target.name, ref.project, ref.service, docker_client_factory())
    if target.kind is TargetKind.RELEASE_DIR and target.release_dir is not None:
        from watchdogd.targets.release_dir import ReleaseDirDriver  # noqa: PLC0415

        spec = target.release_dir
        return ReleaseDirDriver(
            target.name,
            spec.path,
            releases=spec.releases,
            current=spec.current,
            restart=spec.restart,
        )
    if target.kind is TargetKind.SWARM and target.swarm is not None:
        from watchdogd.targets.swarm import SwarmDriver  # noqa: PLC0415

        return SwarmDriver(target.name, target.swarm.service, docker_client_factory())
    raise TargetError(f"target {target.name}: no {target.kind} settings to build a driver from")
