"""The package's layers hold: no import cycle, and no import against the documented order.

The order is written once, in the docstring of ``watchdogd/__init__.py``; this test reads it
from there. Imports under ``if TYPE_CHECKING:`` count: a cycle that only the type checker sees
is still two modules that cannot be read apart.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import watchdogd

PACKAGE = Path(watchdogd.__file__).parent
ROOT = "watchdogd"


def documented_order(doc: str) -> list[set[str]]:
    """The groups of the ``Import order`` paragraph, first to last."""
    lines = doc.split("Import order", 1)[1].split("\n\n", 2)[1].split("\n")
    chain = " ".join(line.strip() for line in lines)
    return [{name.strip() for name in group.split(",")} for group in chain.split("<")]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, module) for every watchdogd module that ``path`` imports, wherever it stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                # `from watchdogd.daemon import logs` imports a module; `import __version__` not.
                submodule = f"{source}.{alias.name}"
                yield node.lineno, submodule if submodule in known else source


def graph() -> dict[str, list[tuple[int, str]]]:
    found = modules()
    known = set(found)
    return {
        name: [(line, dep) for line, dep in imported(name, path, known) if dep in known]
        for name, path in found.items()
    }


def unit(module: str) -> str:
    """The layer a module belongs to: its package below watchdogd, or the top-level module."""
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def order_violations(edges: dict[str, list[tuple[int, str]]], order: list[set[str]]) -> list[str]:
    rank = {name: index for index, group in enumerate(order) for name in group}
    problems = []
    for module, deps in edges.items():
        mine = unit(module)
        if mine not in rank:
            problems.append(f"{module}: layer {mine!r} is not in the documented import order")
            continue
        for line, dep in deps:
            theirs = unit(dep)
            if theirs != mine and rank.get(theirs, len(order)) >= rank[mine]:
                problems.append(f"{module}:{line} imports {dep} ({theirs} is not before {mine})")
    return problems


def cycles(edges: dict[str, list[tuple[int, str]]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graph is a few hundred nodes deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for _, dep in edges.get(node, []):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or any(dep == node for _, dep in edges.get(node, [])):
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


class TestLayers:
    def test_order_is_documented(self) -> None:
        """The order parses, and every package and top-level module has a place in it."""
        order = documented_order(watchdogd.__doc__ or "")
        placed = set().union(*order)
        assert {"core", "config", "watch", "daemon", "cli"} <= placed
        present = {unit(name) for name in modules()}
        assert present - placed == set()

    def test_no_import_against_the_order(self) -> None:
        assert order_violations(graph(), documented_order(watchdogd.__doc__ or "")) == []

    def test_no_import_cycle(self) -> None:
        assert cycles(graph()) == []


class TestChecker:
    ORDER = [{"__init__", "errors"}, {"core"}, {"watch"}, {"daemon"}]

    def test_flags_an_import_upwards(self) -> None:
        edges = {"watchdogd.core.gates": [(3, "watchdogd.watch.recorder")]}
        assert order_violations(edges, self.ORDER) == [
            "watchdogd.core.gates:3 imports watchdogd.watch.recorder (watch is not before core)"
        ]

    def test_allows_own_package_and_earlier_layers(self) -> None:
        edges = {
            "watchdogd.watch.recorder": [(1, "watchdogd.watch.tally"), (2, "watchdogd.core.x")],
            "watchdogd.daemon.wiring": [(1, "watchdogd.errors"), (2, "watchdogd")],
        }
        assert order_violations(edges, self.ORDER) == []

    def test_flags_an_unplaced_layer(self) -> None:
        edges = {"watchdogd.misc.thing": []}
        assert order_violations(edges, self.ORDER) == [
            "watchdogd.misc.thing: layer 'misc' is not in the documented import order"
        ]

    def test_finds_a_cycle_through_type_checking(self, tmp_path: Path) -> None:
        """A cycle closed only under ``if TYPE_CHECKING:`` is found."""
        source = (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from watchdogd.a import A\n"
        )
        file = tmp_path / "b.py"
        file.write_text(source)
        deps = list(imported("watchdogd.b", file, {"watchdogd.a", "watchdogd.b"}))
        edges = {"watchdogd.a": [(1, "watchdogd.b")], "watchdogd.b": deps}
        assert cycles(edges) == [["watchdogd.a", "watchdogd.b"]]

    def test_resolves_relative_imports(self, tmp_path: Path) -> None:
        file = tmp_path / "c.py"
        file.write_text("from . import d\nfrom ..core.window import Window\n")
        known = {"watchdogd.pkg.d", "watchdogd.core.window"}
        assert [dep for _, dep in imported("watchdogd.pkg.c", file, known)] == [
            "watchdogd.pkg.d",
            "watchdogd.core.window",
        ]

    def test_reads_the_documented_order(self) -> None:
        doc = "Intro.\n\nImport order: blah\n\n    a, b < c\n    < d\n\nMore."
        assert documented_order(doc) == [{"a", "b"}, {"c"}, {"d"}]

    @pytest.mark.parametrize("module", ["watchdogd", "watchdogd.errors"])
    def test_foundations_count_as_first(self, module: str) -> None:
        assert unit(module) in {"__init__", "errors"}
