"""The demo's watchdogd configs: templates in ``config/`` with ``$name`` placeholders.

Paths are filled in as YAML double-quoted strings (JSON's quoting is valid YAML), so a working
directory with spaces or colons still gives a valid file. The rendered config is written next
to the demo's other files, where the summary points to it.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from pathlib import Path

CONFIG_DIR = Path(__file__).with_name("config")
RELEASE_DIR_TEMPLATE = "release-dir.yaml"
DOCKER_TEMPLATE = "docker.yaml"

#: The gates each fault is meant to trip, per template. A crash is hard down for every probe at
#: once; the health probe, listed first and probing most often, names it, unless the login
#: flow's third failure lands in an earlier tick. In a container the engine may see it first.
_HARD_DOWN = frozenset({"health:failure_rate", "login:failure_rate"})
EXPECTED_GATES: dict[str, dict[str, frozenset[str]]] = {
    RELEASE_DIR_TEMPLATE: {
        "errors": frozenset({"traffic:error_rate"}),
        "latency": frozenset({"traffic:latency_p95"}),
        "auth": frozenset({"login:failure_rate"}),
        "crash": _HARD_DOWN,
    },
    DOCKER_TEMPLATE: {
        # `docker rm -f` + `run` leaves a gap in which nothing listens. On a loaded machine,
        # where the busybox app answers in seconds, the probes and login flows that straddle
        # it can trip a hard-down gate (with the demo's small evidence) before the error
        # ratio has its 10 errors: the bad release is rolled back either way.
        "errors": _HARD_DOWN | {"traffic:error_rate"},
        "latency": frozenset({"traffic:latency_p95"}),
        "auth": frozenset({"login:failure_rate"}),
        "crash": _HARD_DOWN | {"running:unhealthy"},
    },
}


def render(template: str, *, paths: Mapping[str, str], words: Mapping[str, str]) -> str:
    """The template with ``paths`` quoted and ``words`` (ports, URLs, names) as they are."""
    values = {name: json.dumps(value) for name, value in paths.items()}
    for name, value in words.items():
        if any(c in value for c in " \"'#{}[],&*!|>%@`\n"):
            raise ValueError(f"{name}={value!r} cannot go into the config unquoted")
        values[name] = value
    return string.Template((CONFIG_DIR / template).read_text()).substitute(values)
