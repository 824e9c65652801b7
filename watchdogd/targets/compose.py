"""A Compose service, ``{project, service}``: every replica, found by Compose's labels.

No compose binary is needed: Compose records everything in container labels, and the
replicas are recreated like single containers (``container.put_back``), one at a time so the
service keeps serving during the rollback. The labels are kept as they were, so
``docker compose ps`` still lists the service; docs/compose.md says what a later
``docker compose up`` does to it.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Sequence
from typing import Any

import structlog

from watchdogd.engine.docker_api import DockerEngine
from watchdogd.errors import TargetError
from watchdogd.model import Release, Starts
from watchdogd.targets.base import ExecResult
from watchdogd.targets.compose_release import GREEN_MARK
from watchdogd.targets.container import (
    NEW_MARK,
    OLD_MARK,
    health_of,
    inspect_with_spec,
    is_running,
    put_back,
)
from watchdogd.targets.recreate import container_name, is_anonymous_volume, release_of
from watchdogd.targets.stopped import StopMemory

log = structlog.get_logger(__name__)

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
ONEOFF = "com.docker.compose.oneoff"
NUMBER = "com.docker.compose.container-number"
# Compose (1.29 and v2) renames the container it replaces to ``<short id>_<name>`` for the
# moment of a recreate: not a replica, and never to be recreated under that name.
COMPOSE_TEMPORARY = re.compile(r"^[0-9a-f]{12}_")


class ComposeDriver:
    """A target that is every replica of one Compose service."""

    def __init__(self, target: str, project: str, service: str, engine: DockerEngine) -> None:
        self.target = target
        self.project = project
        self.service = service
        self.engine = engine
        self._lock = asyncio.Lock()
        self._starts: Starts | None = None
        self._stops = StopMemory()

    def starts(self) -> Starts | None:
        return self._starts

    async def _replicas(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Inspect output and snapshot of each replica, by container number."""
        listed = await self.engine.list_containers({PROJECT: self.project, SERVICE: self.service})
        found = []
        for summary in listed:
            names = [str(n).lstrip("/") for n in summary.get("Names") or []]
            labels = summary.get("Labels") or {}
            # ``docker compose run`` containers are not replicas; our swap temporaries, a
            # deploy's green and Compose's own temporaries carry the labels too but are not
            # the service yet (or any more).
            if labels.get(ONEOFF, "False") == "True" or any(
                NEW_MARK in n or OLD_MARK in n or GREEN_MARK in n or COMPOSE_TEMPORARY.match(n)
                for n in names
            ):
                continue
            pair = await inspect_with_spec(self.engine, summary["Id"])
            if pair is not None:
                found.append(pair)
        return sorted(found, key=lambda pair: _number(pair[1]))

    async def current(self) -> Release | None:
        replicas = await self._replicas()
        if not replicas:
            self._starts = None
            return None
        inspects = [inspect for inspect, _ in replicas]
        stopped = await self._stops.stopped_on_request(self.engine, inspects)
        self._starts = Starts.of(inspects, stopped)
        releases = [release_of(self.target, spec) for _, spec in replicas]
        # Replicas can differ mid-rollout; the newest is what was deployed last.
        newest = max(releases, key=lambda r: str(r.spec["Created"]))
        members = [
            r.spec
            for r in releases
            if (r.image, r.config_hash) == (newest.image, newest.config_hash)
        ]
        return Release(
            target=self.target,
            image=newest.image,
            config_hash=newest.config_hash,
            image_ref=newest.image_ref,
            spec={"project": self.project, "service": self.service, "replicas": members},
        )

    async def restore(self, release: Release, stop_timeout: float) -> None:
        recorded = {container_name(s): s for s in release.spec.get("replicas") or []}
        if not recorded:
            raise TargetError(f"release {release.id} has no recorded replicas")
        async with self._lock:
            now = {container_name(spec): inspect for inspect, spec in await self._replicas()}
            newest = max(recorded.values(), key=lambda s: str(s["Created"]))
            failures = []
            # Replicas scaled up since the release was recorded run the bad image too: they
            # are recreated from a recorded sibling, with their own identity.
            for name in sorted(set(recorded) | set(now), key=_natural):
                spec = recorded.get(name) or _as_replica(newest, now[name])
                try:
                    await put_back(self.engine, name, release, spec, stop_timeout)
                except TargetError as err:
                    failures.append(f"{name}: {err}")
            if failures:
                raise TargetError(
                    f"{len(failures)} replica(s) of {self.project}/{self.service} kept their "
                    "previous container: " + "; ".join(failures)
                )

    async def healthy(self) -> bool | None:
        replicas = await self._replicas()
        if not replicas:
            return False
        states = [await health_of(self.engine, inspect["Id"]) for inspect, _ in replicas]
        if False in states:
            return False
        return True if all(states) else None

    async def exec(
        self,
        command: Sequence[str],
        *,
        user: str | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        """Runs in the first running replica: exec steps (a schema downgrade) run once."""
        running = [inspect for inspect, _ in await self._replicas() if is_running(inspect)]
        if not running:
            raise TargetError(f"no running replica of {self.project}/{self.service}")
        return await self.engine.exec(
            running[0]["Id"], command, user=user, workdir=workdir, env=env, timeout=timeout
        )


def _number(spec: dict[str, Any]) -> int:
    labels = spec["Config"].get("Labels") or {}
    try:
        return int(labels.get(NUMBER, 0))
    except ValueError:
        return 0


def _natural(name: str) -> tuple[str, int]:
    """``web-2`` before ``web-10``."""
    head, _, tail = name.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (name, 0)


def _as_replica(sibling: dict[str, Any], existing: dict[str, Any]) -> dict[str, Any]:
    """``sibling``'s recorded configuration with ``existing``'s identity: name, number,
    its own anonymous volumes; no static IPs (two replicas cannot share one)."""
    spec = copy.deepcopy(sibling)
    old_name, new_name = container_name(sibling), str(existing["Name"]).lstrip("/")
    spec["Name"] = "/" + new_name
    labels = spec["Config"].setdefault("Labels", {})
    number = ((existing.get("Config") or {}).get("Labels") or {}).get(NUMBER)
    if number is not None:
        labels[NUMBER] = number
    for endpoint in spec["NetworkSettings"]["Networks"].values():
        endpoint["Aliases"] = [
            new_name if a == old_name else a for a in endpoint.get("Aliases") or []
        ]
        endpoint["IPAMConfig"] = None
    spec["Mounts"] = [
        m for m in spec["Mounts"] if not is_anonymous_volume(str(m.get("Name") or ""))
    ] + [m for m in existing.get("Mounts") or [] if is_anonymous_volume(str(m.get("Name") or ""))]
    return spec
