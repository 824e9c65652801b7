"""A state store with damage in it, for the tests of how the daemon and the store take it."""

from __future__ import annotations

import os
from pathlib import Path

from watchdogd.store import Store


def damaged_store(path: Path) -> None:
    """A store at ``path`` whose audit table has a page of garbage; the schema pages are
    intact, so it opens, and reading the audit log finds the damage."""
    with Store(path) as store:
        for index in range(400):
            store.audit("filler", "row", data={"blob": "y" * 1000, "index": index})
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.seek(size - 20 * 4096 + 100)
        file.write(os.urandom(3000))
