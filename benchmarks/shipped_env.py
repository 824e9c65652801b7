"""The environment the shipped systemd unit gives the daemon, so that benchmarks and tests run
``watchdogd run`` as it is installed: the unit's ``Environment=`` lines, with ``%C`` (systemd's
cache root, ``/var/cache``) pointed at a directory of this venv.

The unit sets ``PYTHONOPTIMIZE=2`` with a bytecode cache in its ``CacheDirectory=``; its
environment holds no ``PYTHONDONTWRITEBYTECODE``, so a daemon started from a shell that sets
it is started without it: the first start writes the bytecode, later starts read it.
"""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "watchdogd.service"
# Where %C points: inside the venv, so that `make clean` takes the bytecode with it.
CACHE_ROOT = Path(sys.prefix) / "cache"


def unit_environment(text: str, cache_root: Path = CACHE_ROOT) -> dict[str, str]:
    """The variables of every ``Environment=`` line of a unit, quoted as systemd quotes them,
    with the ``%C`` specifier expanded to ``cache_root``."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() != "Environment":
            continue
        for assignment in shlex.split(value):
            name, _, setting = assignment.partition("=")
            env[name] = setting.replace("%C", str(cache_root))
    return env


@functools.cache
def _shipped() -> dict[str, str]:
    # Read once: every daemon a test or benchmark starts asks for it.
    return unit_environment(UNIT.read_text())


def daemon_environment(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` as the shipped unit would run the daemon in it."""
    env = {name: value for name, value in base.items() if name != "PYTHONDONTWRITEBYTECODE"}
    return env | _shipped()
