"""Shared pytest configuration: loads the fixtures of tests/support as plugins."""

import sys
from pathlib import Path

# `tests` has no __init__.py, so pytest puts tests/ (not the repository root) on sys.path;
# the root is needed to import `tests.support`.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

pytest_plugins = ["tests.support.services", "tests.support.images"]
