"""Fixtures of the daemon tests; the helpers themselves live in ``tests.support.daemon``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import NotifySocket
from tests.support.ports import free_port


@pytest.fixture
def daemon_port() -> int:
    return free_port()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(str(tmp_path / "notify.sock"))
    sock.start()
    yield sock
    sock.close()
