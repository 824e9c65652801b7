"""Where a target's release lives, by kind: a Compose service, a Swarm service, or a release
directory (a container target is named by a string)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from watchdogd.config.base import Strict


class ComposeRef(Strict):
    project: str
    service: str


class SwarmRef(Strict):
    service: str


class ReleaseDir(Strict):
    """``path/releases/<version>/`` plus a ``path/current`` symlink, as on many plain VMs."""

    path: Path
    releases: str = "releases"
    current: str = "current"
    restart: Annotated[list[str], Field(min_length=1)] | None = None
