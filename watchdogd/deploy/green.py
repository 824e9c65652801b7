"""Blue and green as containers: find blue, start green from blue's whole configuration with
another image, learn where HAProxy reaches each, and retire one of them.

Green is created by the same code a rollback uses (``targets.recreate.create_plan``), so it
gets what blue has (env, labels, mounts, networks and aliases, restart policy, limits,
healthcheck) minus what blue's image supplied; only its name and its published host ports
differ: every host port is left for the engine to choose, or green would collide with blue.

Names: green is ``<blue name>-green-<token>`` until it is promoted, when it takes blue's name
(blue is stopped and removed first; its release stays in the history). A crash leaves
nothing anonymous behind: every green is named in the deploy journal.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from watchdogd.config.schema import TargetConfig, TargetKind
from watchdogd.config.traffic import Upstream
from watchdogd.errors import NotSingleReplica, ObjectMissing, TargetError
from watchdogd.model import Release
from watchdogd.targets.compose_release import GREEN_MARK, renamed, replica_spec, service_release
from watchdogd.targets.recreate import create_plan, release_of

if TYPE_CHECKING:
    # Types only: the Docker SDK loads when a deploy touches Docker, not at start (issue #16).
    from watchdogd.engine.docker_api import DockerEngine

log = structlog.get_logger(__name__)

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
# An engine restart takes seconds to a minute (a large host restarts many containers).
REMOVE_PATIENCE = 120.0
PROMOTE_PATIENCE = 120.0

T = TypeVar("T")


@dataclass(frozen=True)
class Endpoint:
    """Where HAProxy sends a release's requests."""

    address: str
    port: int

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "port": self.port}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Endpoint:
        return cls(str(data["address"]), int(data["port"]))


def green_name(blue: str, token: str) -> str:
    return f"{blue}{GREEN_MARK}{token}"


def green_spec(blue_spec: dict[str, Any]) -> dict[str, Any]:
    """Blue's snapshot with every published host port left to the engine."""
    spec = copy.deepcopy(blue_spec)
    bindings = spec.get("HostConfig", {}).get("PortBindings") or {}
    for port, binds in bindings.items():
        bindings[port] = [{**bind, "HostPort": ""} for bind in binds or [{}]]
    return spec


async def resolve_image(engine: DockerEngine, ref: str) -> dict[str, Any]:
    """The image ``ref`` names, which must be on this host (watchdogd does not pull)."""
    image = await engine.inspect_image(ref)
    if image is None:
        raise TargetError(f"image {ref} is not on this host; pull it first (docker pull {ref})")
    return image


def image_keys(image: dict[str, Any]) -> set[str]:
    """Every way a quarantine may name this image: its ID and its digests."""
    return {str(image["Id"]), *(str(d) for d in image.get("RepoDigests") or [])}


async def create_green(
    engine: DockerEngine, blue_spec: dict[str, Any], image_ref: str, name: str
) -> str:
    """Create (not start) green; returns its ID. Removes it again if a later call fails.
    ``blue_spec`` is blue's release spec: a container's snapshot, or a Compose service's
    (whose one replica is blue; green keeps its Compose labels, container number included,
    so that Compose sees the service's one replica again once green is promoted)."""
    spec = green_spec(replica_spec(blue_spec))
    # Create by the reference the user gave, so `docker ps` shows it.
    spec["Config"] = {**spec["Config"], "Image": image_ref}
    plan = create_plan(spec, image_ref, await engine.api_version())
    container_id = await engine.create(plan.body, name)
    try:
        for network, endpoint in plan.connect:
            await engine.connect(container_id, network, endpoint)
    except TargetError:
        await remove_quietly(engine, container_id)
        raise
    return container_id


async def start_green(engine: DockerEngine, name: str) -> None:
    await engine.start(name)
    inspect = await engine.inspect_container(name)
    if inspect is None or not _running(inspect):
        state = (inspect or {}).get("State") or {}
        logs = await engine.logs_tail(name)
        raise TargetError(
            f"green container {name} exited right after start "
            f"(exit code {state.get('ExitCode')}): {logs}"
        )


async def release_in(
    engine: DockerEngine, target: TargetConfig, name: str, *, serving_as: str | None = None
) -> Release | None:
    """The release container ``name`` runs, in the form the target's driver records: a
    container's snapshot, or a Compose service's one replica. A Compose release re-creates
    its replicas by their recorded names, so green's is recorded under ``serving_as``, the
    name it takes when promoted (a container target re-creates under its configured name)."""
    from watchdogd.targets.container import inspect_with_spec  # noqa: PLC0415 - see _running

    found = await inspect_with_spec(engine, name)
    if found is None:
        return None
    spec = found[1]
    if target.kind is TargetKind.COMPOSE and target.compose is not None:
        if serving_as is not None:
            spec = renamed(spec, serving_as)
        compose = target.compose
        return service_release(target.name, compose.project, compose.service, spec)
    return release_of(target.name, spec)


async def endpoint_of(engine: DockerEngine, name: str, upstream: Upstream) -> Endpoint:
    """Where HAProxy reaches container ``name``."""
    inspect = await engine.inspect_container(name)
    if inspect is None:
        raise TargetError(f"container {name} is gone")
    settings = inspect.get("NetworkSettings") or {}
    if upstream.via == "network":
        network = (settings.get("Networks") or {}).get(upstream.network or "")
        address = (network or {}).get("IPAddress")
        if not address:
            raise TargetError(f"container {name} has no address on network {upstream.network}")
        return Endpoint(str(address), upstream.port)
    binds = (settings.get("Ports") or {}).get(f"{upstream.port}/tcp") or []
    for bind in binds:
        if bind.get("HostPort"):
            return Endpoint(upstream.host_address, int(bind["HostPort"]))
    raise TargetError(
        f"container {name} publishes no host port for {upstream.port}/tcp; "
        "traffic.upstream.port must be a port it publishes (or use via: network)"
    )


async def health_state(engine: DockerEngine, name: str) -> str:
    """``healthy``, ``unhealthy`` or ``starting`` from Docker's HEALTHCHECK; ``none`` when the
    container has none; ``stopped`` when it does not run (or is gone)."""
    inspect = await engine.inspect_container(name)
    if inspect is None or not _running(inspect):
        return "stopped"
    health = (inspect.get("State") or {}).get("Health") or {}
    return str(health.get("Status") or "none")


async def healthy(engine: DockerEngine, name: str) -> bool | None:
    from watchdogd.targets.container import health_of  # noqa: PLC0415 - see _running

    return await health_of(engine, name)


async def remove_quietly(
    engine: DockerEngine, name: str, patience: float = REMOVE_PATIENCE
) -> None:
    """Remove ``name``, trying again for ``patience`` seconds while the engine fails (an engine
    restart): the journal says a green is gone once this returns, and a green left behind
    would run again, unrecorded, when the engine restarts it (found by the soak)."""
    try:
        await through_outage(lambda: engine.remove(name, force=True), patience=patience)
    except ObjectMissing:
        return
    except TargetError as err:
        log.error("deploy_remove_failed", container=name, error=str(err))


async def exists(engine: DockerEngine, name: str) -> bool:
    return await engine.inspect_container(name) is not None


async def promote(engine: DockerEngine, blue: str, green: str, stop_timeout: float) -> None:
    """Retire blue and give green blue's name. Idempotent: run again after a crash or an
    engine outage, it finishes what is left (blue may already be gone, green may already be
    renamed). ``ObjectMissing`` when green is gone: nothing is left to promote."""
    current = await engine.inspect_container(blue)
    green_inspect = await engine.inspect_container(green)
    if green_inspect is None:
        if current is not None and current["Name"].lstrip("/") == blue:
            return  # already renamed: green is blue now
        raise ObjectMissing(f"green container {green} is gone; cannot promote it")
    if current is not None:
        try:
            await engine.stop(blue, stop_timeout)
            await engine.remove(blue, force=True)
        except ObjectMissing:
            pass  # blue went away by itself meanwhile: retired all the same
    await engine.rename(green, blue)


async def through_outage(
    action: Callable[[], Awaitable[T]],
    *,
    patience: float,
    waiting: Callable[[TargetError], Awaitable[None]] | None = None,
) -> T:
    """``action()``, tried again while the engine does not answer (a ``TargetError`` that is
    not ``ObjectMissing``) for up to ``patience`` seconds, then its last error. ``action``
    must be idempotent. ``waiting`` hears the first failure, so the deploy can say why it
    stands still."""
    delay, deadline = 0.2, time.monotonic() + patience
    while True:
        try:
            return await action()
        except ObjectMissing:
            raise
        except TargetError as err:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("deploy_engine_retried", error=str(err))
            if waiting is not None:
                await waiting(err)
                waiting = None  # said once
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def blue_container(engine: DockerEngine, target: TargetConfig) -> str:
    """The container that serves now: the target's, or the one running replica of its service."""
    if target.kind is TargetKind.CONTAINER and target.container:
        return target.container
    if target.kind is TargetKind.COMPOSE and target.compose is not None:
        labels = {
            COMPOSE_PROJECT: target.compose.project,
            COMPOSE_SERVICE: target.compose.service,
        }
        names = [
            str(n).lstrip("/")
            for c in await engine.list_containers(labels)
            for n in (c.get("Names") or [])[:1]
            if c.get("State") == "running"
        ]
        names = [n for n in names if "-wd-" not in n and GREEN_MARK not in n]
        if len(names) != 1:
            raise NotSingleReplica(
                f"a blue-green deploy needs exactly one running replica of "
                f"{target.compose.project}/{target.compose.service}, found {len(names)}"
            )
        return names[0]
    raise TargetError(f"target {target.name} is not a container or compose target")


def _running(inspect: dict[str, Any]) -> bool:
    # Imported here: targets.container loads the Docker SDK, which a daemon without a deploy
    # in flight never needs at start (issue #16).
    from watchdogd.targets.container import is_running  # noqa: PLC0415

    return is_running(inspect)
