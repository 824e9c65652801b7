"""Where a target's release lives, by kind: a Compose service, a Swarm service, or a release
directory (a container target is named by a string)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from annotated_types import MinLen

from watchdogd.config.base import Strict


@dataclass(frozen=True, kw_only=True)
class ComposeRef(Strict):
    project: str
    service: str


@dataclass(frozen=True, kw_only=True)
class SwarmRef(Strict):
    service: str


@dataclass(frozen=True, kw_only=True)
class ReleaseDir(Strict):
    """``path/releases/<version>/`` plus a ``path/current`` symlink, as on many plain VMs."""

    path: Path
    releases: str = "releases"
    current: str = "current"
    restart: Annotated[list[str], MinLen(1)] | None = None
