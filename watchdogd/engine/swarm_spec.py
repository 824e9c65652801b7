"""What a Swarm service spec and its tasks say: the image, the release fingerprint, which
tasks run which spec, and whether Swarm is updating. Plain functions on the Engine API's JSON,
shared by the swarm driver, the task source and the state mirror.
"""

from __future__ import annotations

import copy
from typing import Any

from watchdogd.model import fingerprint

__all__ = [
    "PAUSED",
    "UPDATING",
    "desired_replicas",
    "image_of",
    "repository",
    "running_tasks",
    "runs_spec",
    "spec_fingerprint",
    "split_digest",
    "update_state",
]

UPDATING = frozenset({"updating", "rollback_started"})
PAUSED = frozenset({"paused", "rollback_paused"})


def image_of(spec: dict[str, Any]) -> str:
    return str(((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image") or "")


def split_digest(ref: str) -> tuple[str, str | None]:
    """``app:v1@sha256:ab…`` -> (``app:v1``, ``sha256:ab…``); no digest -> (ref, None)."""
    name, _, digest = ref.partition("@")
    return name, digest or None


def repository(ref: str) -> str:
    """``registry:5000/app:v1`` -> ``registry:5000/app``."""
    head, _, last = ref.partition("@")[0].rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def spec_fingerprint(spec: dict[str, Any]) -> str:
    template = copy.deepcopy(spec.get("TaskTemplate") or {})
    (template.get("ContainerSpec") or {}).pop("Image", None)
    template.pop("ForceUpdate", None)  # `--force` redeploys the same release
    return fingerprint({"task": template, "endpoint": spec.get("EndpointSpec") or {}})


def runs_spec(task: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Whether ``task`` was made from ``spec``. A task carries a copy of the task template it
    was made from (without ``Runtime``); the container spec and the force counter tell the
    releases apart without depending on the engine's defaults."""
    template, own = spec.get("TaskTemplate") or {}, task.get("Spec") or {}
    return own.get("ContainerSpec") == template.get("ContainerSpec") and own.get(
        "ForceUpdate", 0
    ) == template.get("ForceUpdate", 0)


def desired_replicas(service: dict[str, Any], tasks: list[dict[str, Any]]) -> int:
    """Replicas asked for; a global service wants one task per eligible node."""
    replicated = ((service["Spec"].get("Mode") or {}).get("Replicated")) or None
    if replicated is not None:
        return int(replicated.get("Replicas") or 0)
    return sum(1 for t in tasks if t.get("DesiredState") == "running")


def running_tasks(spec: dict[str, Any], tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks of ``spec`` that Swarm wants running and that run. A task with a HEALTHCHECK
    stays ``starting`` until its container is healthy, so ``running`` means healthy too."""
    return [
        t
        for t in tasks
        if t.get("DesiredState") == "running"
        and (t.get("Status") or {}).get("State") == "running"
        and runs_spec(t, spec)
    ]


def update_state(service: dict[str, Any]) -> tuple[str, str]:
    status = service.get("UpdateStatus") or {}
    return str(status.get("State") or ""), str(status.get("Message") or "")
