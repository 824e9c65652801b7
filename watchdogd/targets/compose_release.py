"""A Compose service's release as watchdogd records it, and which containers are not replicas.

Pure, no I/O (so ``deploy/`` may use it without loading the Docker SDK). A Compose target's
release is its replicas' snapshots by name (``ComposeDriver.current``); a blue-green deploy
of a one-replica service records green the same way, under the name it will serve by once
promoted (blue's), so that a later re-create of that release brings back that name.
"""

from __future__ import annotations

import copy
from typing import Any

from watchdogd.errors import TargetError
from watchdogd.model import Release
from watchdogd.targets.recreate import container_name, release_of

# ``watchdogd deploy`` names green ``<blue>-green-<token>`` and gives it blue's labels, so
# Compose still sees the project; it is not a replica until it is promoted and takes blue's
# name (until then the service's release is blue's).
GREEN_MARK = "-green-"


def service_release(target: str, project: str, service: str, replica: dict[str, Any]) -> Release:
    """The release of a service that runs one replica, ``replica`` (a snapshot), in the form
    ``ComposeDriver.current`` gives it."""
    found = release_of(target, replica)
    return Release(
        target=target,
        image=found.image,
        config_hash=found.config_hash,
        image_ref=found.image_ref,
        spec={"project": project, "service": service, "replicas": [replica]},
    )


def replica_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A container snapshot from a release's spec: a Compose release's first replica, or the
    spec itself when it is a container's."""
    replicas = spec.get("replicas")
    if replicas is None:
        return spec
    if not replicas:
        raise TargetError("the release records no replica to start green from")
    return dict(replicas[0])


def renamed(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """``spec`` as it reads once its container is renamed to ``name``: the name, and the old
    name among its network aliases (Compose v2 gives each replica its name as an alias)."""
    old = container_name(spec)
    result = copy.deepcopy(spec)
    result["Name"] = "/" + name
    for endpoint in (result.get("NetworkSettings") or {}).get("Networks", {}).values():
        if endpoint and endpoint.get("Aliases"):
            endpoint["Aliases"] = [name if a == old else a for a in endpoint["Aliases"]]
    return result
