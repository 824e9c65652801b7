"""The decision core stays pure: no I/O imports and no clock reads, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import watchdogd.core

CORE = Path(watchdogd.core.__file__).parent
MODULES = sorted(CORE.rglob("*.py"))

# Pure computation only. statistics is here for NormalDist().inv_cdf (the Wilson z), re for
# the PromQL selector parser.
ALLOWED = {
    "__future__",
    "bisect",
    "collections",
    "collections.abc",
    "dataclasses",
    "enum",
    "math",
    "re",
    "statistics",
    "types",
    "typing",
    "watchdogd.errors",  # the one exception tree: plain classes, no I/O
    "watchdogd.model",  # values crossing layers (TriggerKind): frozen dataclasses, no I/O
}
# Named explicitly so that the failure message says what went wrong.
FORBIDDEN = {
    "aiohttp",
    "asyncio",
    "datetime",
    "docker",
    "httpx",
    "io",
    "os",
    "pathlib",
    "random",
    "requests",
    "select",
    "selectors",
    "shutil",
    "socket",
    "sqlite3",
    "subprocess",
    "sys",
    "threading",
    "time",
    "urllib",
}
CLOCK_CALLS = {
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("time", "time_ns"),
    ("time", "monotonic_ns"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("date", "today"),
}
IO_BUILTINS = {"open", "input", "print", "breakpoint", "exec", "eval", "__import__"}


def impurities(source: str) -> list[str]:
    """Every import outside ALLOWED and every clock or I/O call in ``source``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module is not None:
                names = [node.module]
            elif node.level >= 2:  # `from .. import x` climbs out of watchdogd.core
                found.append(f"line {line}: imports from outside the core")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in CLOCK_CALLS
        ):
            found.append(f"line {line}: reads the clock with {node.value.id}.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in IO_BUILTINS
        ):
            found.append(f"line {line}: calls {node.func.id}()")
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                found.append(f"line {line}: imports forbidden module {name}")
            elif name not in ALLOWED and not name.startswith("watchdogd.core"):
                found.append(f"line {line}: imports {name}, which is not on the allowlist")
    return found


class TestCorePurity:
    def test_core_has_modules(self) -> None:
        """The check looks at the real package, not an empty directory."""
        assert {p.name for p in MODULES} >= {"__init__.py", "window.py", "gates.py", "incident.py"}

    @pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
    def test_module_is_pure(self, module: Path) -> None:
        """No core module imports I/O or reads a clock."""
        assert impurities(module.read_text(encoding="utf-8")) == []


class TestChecker:
    @pytest.mark.parametrize(
        ("source", "complaint"),
        [
            ("import asyncio", "forbidden module asyncio"),
            ("import docker.errors", "forbidden module docker.errors"),
            ("from httpx import AsyncClient", "forbidden module httpx"),
            ("import sqlite3 as db", "forbidden module sqlite3"),
            ("from subprocess import run", "forbidden module subprocess"),
            ("from time import monotonic", "forbidden module time"),
            ("import json", "json, which is not on the allowlist"),
            ("t = time.monotonic()", "reads the clock with time.monotonic"),
            ("t = time.time()", "reads the clock with time.time"),
            ("t = datetime.now()", "reads the clock with datetime.now"),
            ("f = open('x')", "calls open()"),
            ("from ..sources import http", "outside the core"),
        ],
    )
    def test_catches(self, source: str, complaint: str) -> None:
        """The checker flags each kind of impurity it is meant to catch."""
        assert any(complaint in line for line in impurities(source))

    def test_allows_pure_imports(self) -> None:
        """Relative imports, core imports and the allowlist pass."""
        source = (
            "from __future__ import annotations\n"
            "import math\n"
            "from collections.abc import Mapping\n"
            "from watchdogd.core.window import Window\n"
            "from . import gates\n"
        )
        assert impurities(source) == []
