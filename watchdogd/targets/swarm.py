"""A Swarm service, by name: Swarm runs the replicas, watchdogd tells it which spec to run.

A release is the service spec's image plus a fingerprint of the rest of what Swarm deploys
(the task template without the image and the ``ForceUpdate`` counter, and the endpoint spec).
The image is the digest the spec pins (``app:v1@sha256:…``, as ``docker service create``
records it when a registry answers), else the image ID the reference resolves to on this
manager, else the reference itself (an image only the workers have).

Putting a release back, always under the service's ``version`` compare-and-swap:

* already the spec: nothing is posted. This is what makes a re-run safe: Swarm *swaps* Spec
  and PreviousSpec on ``rollback=previous``, so a second one would flip back into the bad
  release (REFERENCE.md). A conflict means somebody wrote in between: re-read and decide again;
* ``PreviousSpec`` is that release, with the same ``Mode`` (a rollback would also undo a
  scale): ``rollback=previous``, Swarm's own rollback with the service's ``RollbackConfig``;
* otherwise the recorded task template and endpoint spec are posted as an update, the image
  pinned so that a moved tag cannot bring the bad image back.

Then ``restore`` waits until Swarm is done (``UpdateStatus`` no longer updating, not paused)
and every replica runs the release. Its time limit is the playbook step's ``timeout``.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from typing import Any

import structlog

from watchdogd.engine.docker_api import DockerEngine
from watchdogd.engine.swarm_api import SwarmApi
from watchdogd.engine.swarm_spec import (
    PAUSED,
    UPDATING,
    desired_replicas,
    image_of,
    repository,
    running_tasks,
    spec_fingerprint,
    split_digest,
    update_state,
)
from watchdogd.errors import TargetError, VersionConflict
from watchdogd.model import Release, Starts
from watchdogd.targets.base import ExecResult

log = structlog.get_logger(__name__)

# Compare-and-swap attempts before a restore gives up on a service that keeps changing. Swarm
# itself bumps the version as an update progresses (UpdateStatus), so a few are expected.
CAS_ATTEMPTS = 20
CAS_BACKOFF = 0.05
POLL_INTERVAL = 0.5


class SwarmDriver:
    """A target that is one Swarm service, found by name."""

    def __init__(self, target: str, service: str, engine: DockerEngine) -> None:
        self.target = target
        self.service = service
        self.engine = engine
        self.api = SwarmApi(engine)
        self._lock = asyncio.Lock()

    async def inspect(self) -> dict[str, Any]:
        service = await self.api.service(self.service)
        if service is None:
            raise TargetError(f"no swarm service {self.service}")
        return service

    async def release_of(self, spec: dict[str, Any]) -> Release:
        """The release a service spec describes."""
        ref = image_of(spec)
        name, digest = split_digest(ref)
        if digest is not None:
            image = f"{repository(name)}@{digest}"
        else:
            found = await self.engine.inspect_image(ref) if ref else None
            image = str(found["Id"]) if found is not None else ref
        recorded: dict[str, Any] = {
            key: copy.deepcopy(spec[key]) for key in ("TaskTemplate", "EndpointSpec") if key in spec
        }
        return Release(
            target=self.target,
            image=image,
            config_hash=spec_fingerprint(spec),
            image_ref=name,
            spec={"service": self.service, **recorded},
        )

    async def current(self) -> Release | None:
        service = await self.api.service(self.service)
        return None if service is None else await self.release_of(service["Spec"])

    async def restore(self, release: Release, stop_timeout: float) -> None:
        if not release.spec.get("TaskTemplate"):
            raise TargetError(f"release {release.id} has no recorded task template")
        async with self._lock:
            await self._converge(release)
            await self._wait_for(release)

    async def _converge(self, release: Release) -> None:
        """Post the one write that makes ``release`` the spec, unless it is already."""
        for _ in range(CAS_ATTEMPTS):
            service = await self.inspect()
            spec, previous = service["Spec"], service.get("PreviousSpec")
            if (await self.release_of(spec)).id == release.id:
                log.info("target_swarm_already_restored", service=self.service, release=release.id)
                return
            rollback = (
                previous is not None
                and previous.get("Mode") == spec.get("Mode")
                and (await self.release_of(previous)).id == release.id
            )
            try:
                if rollback:
                    await self.api.update_service(service, spec, rollback=True)
                else:
                    await self.api.update_service(service, await self._spec_for(spec, release))
            except VersionConflict as err:
                log.info("target_swarm_version_conflict", service=self.service, error=str(err))
                await asyncio.sleep(CAS_BACKOFF)
                continue
            log.info(
                "target_swarm_restoring",
                service=self.service,
                release=release.id,
                image=release.label,
                how="rollback=previous" if rollback else "spec update",
                version=service["Version"]["Index"],
            )
            return
        raise TargetError(
            f"service {self.service} changed {CAS_ATTEMPTS} times while restoring release "
            f"{release.id} ({release.label}); not forcing it"
        )

    async def _spec_for(self, spec: dict[str, Any], release: Release) -> dict[str, Any]:
        """The current spec with the release's task template and endpoint spec."""
        template = copy.deepcopy(release.spec["TaskTemplate"])
        container = template.setdefault("ContainerSpec", {})
        container["Image"] = await self._pinned_image(release, str(container.get("Image") or ""))
        template["ForceUpdate"] = (spec.get("TaskTemplate") or {}).get("ForceUpdate", 0)
        new = copy.deepcopy(spec)
        new["TaskTemplate"] = template
        if "EndpointSpec" in release.spec:
            new["EndpointSpec"] = copy.deepcopy(release.spec["EndpointSpec"])
        else:
            new.pop("EndpointSpec", None)
        return new

    async def _pinned_image(self, release: Release, ref: str) -> str:
        """A reference that can only mean the release's image: its digest reference, the tag
        while it still names that image, else the image ID (the tag was moved, maybe to the
        bad image; Swarm does not pull an image given by ID, so it must be on the nodes)."""
        if split_digest(ref)[1] is not None:
            return ref
        tagged = await self.engine.inspect_image(ref) if ref else None
        if tagged is not None and tagged["Id"] == release.image:
            return ref
        if tagged is None and release.image == ref:
            return ref  # never resolved here: the workers have it under this name
        if (
            release.image.startswith("sha256:")
            and await self.engine.inspect_image(release.image) is not None
        ):
            return release.image
        raise TargetError(
            f"image {release.image} ({release.label}) of release {release.id} is no longer on "
            "this host and its tag names another image; restore another release"
        )

    async def _wait_for(self, release: Release) -> None:
        """Until Swarm has finished and every replica runs ``release``."""
        last = ""
        while True:
            service = await self.inspect()
            state, message = update_state(service)
            if (await self.release_of(service["Spec"])).id != release.id:
                raise TargetError(
                    f"service {self.service} was changed again while restoring release "
                    f"{release.id} ({release.label})"
                )
            if state in PAUSED:
                raise TargetError(
                    f"Swarm paused restoring {release.label} on {self.service}: {message}"
                )
            tasks = await self.api.tasks(str(service["ID"]))
            running = len(running_tasks(service["Spec"], tasks))
            wanted = desired_replicas(service, tasks)
            progress = f"{state or 'no update'}, {running}/{wanted} running"
            if progress != last:
                log.info("target_swarm_progress", service=self.service, progress=progress)
                last = progress
            if state not in UPDATING and running >= wanted:
                return
            await asyncio.sleep(POLL_INTERVAL)

    def starts(self) -> Starts | None:
        # A service's tasks are replaced, not restarted: Swarm's own update state says more.
        return None

    async def healthy(self) -> bool | None:
        """Swarm's view: False when an update is paused, None while one runs or replicas are
        missing, True when every replica of the current spec runs (and is healthy)."""
        service = await self.api.service(self.service)
        if service is None:
            return False
        state, _ = update_state(service)
        if state in PAUSED:
            return False
        if state in UPDATING:
            return None
        tasks = await self.api.tasks(str(service["ID"]))
        wanted = desired_replicas(service, tasks)
        running = len(running_tasks(service["Spec"], tasks))
        return True if wanted and running >= wanted else None

    async def exec(
        self,
        command: Sequence[str],
        *,
        user: str | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        """Runs once, in a running replica on this node (exec cannot reach other nodes)."""
        service = await self.inspect()
        node = await self.api.node_id()
        tasks = await self.api.tasks(str(service["ID"]))
        local = [t for t in running_tasks(service["Spec"], tasks) if t.get("NodeID") == node]
        if not local:
            raise TargetError(f"no running replica of service {self.service} on this node")
        container = str(local[0]["Status"]["ContainerStatus"]["ContainerID"])
        return await self.engine.exec(
            container, command, user=user, workdir=workdir, env=env, timeout=timeout
        )
