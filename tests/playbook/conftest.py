"""Fixtures for the playbook tests: a store on a temporary file and a fake target driver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playbook_fakes import BAD, FakeDriver, RecordingSleep

from watchdogd.store import Store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "watchdogd.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store(db_path) as opened:
        yield opened


@pytest.fixture
def driver() -> FakeDriver:
    return FakeDriver(BAD)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()
