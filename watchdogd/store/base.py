"""What every part of the store shares: the database and the clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from watchdogd.store.db import Database

__all__ = ["StoreBase", "dumps"]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class StoreBase:
    """Holds the connection and the clock; the store's parts are mixins over it."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
