"""Fixtures for the state store tests: a store on a temporary file with a hand-driven clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_fakes import FakeClock

from watchdogd.store import Store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    with Store(tmp_path / "state" / "watchdogd.db", clock=clock) as opened:
        yield opened
