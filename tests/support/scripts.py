"""Benchmark scripts imported by path, for the tests of their pure parts: ``benchmarks/`` is
not a package, and its scripts import their siblings by bare name."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@contextmanager
def benchmark_modules(*names: str) -> Iterator[ModuleType]:
    """Import ``benchmarks/<name>.py`` for each name, in order (a later one may import an
    earlier one by name), and yield the last; they leave ``sys.modules`` afterwards."""
    try:
        for name in names:
            spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
            assert spec is not None
            assert spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses looks the module up by name
            spec.loader.exec_module(module)
        yield sys.modules[names[-1]]
    finally:
        for name in names:
            sys.modules.pop(name, None)
