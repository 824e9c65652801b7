"""Test support for watchdogd: private services, test images and small helpers.

The pytest fixtures live in ``tests.support.services`` (services and the Docker engine)
and ``tests.support.images`` (the test app images); ``tests/conftest.py`` loads both
as plugins.

Rules every test follows:

* A test that needs a binary or service that is missing calls :func:`require`.
  Outside CI that skips; with ``CI=true`` it fails, so nothing is skipped silently in CI.
* Everything a test creates in Docker (containers, networks, volumes, services) carries
  :func:`docker_labels`; the session teardown removes what carries this session's labels.
"""

from __future__ import annotations

import itertools
import os
import uuid

import pytest

__all__ = [
    "SESSION_ID",
    "SESSION_LABEL",
    "TEST_LABEL",
    "docker_labels",
    "in_ci",
    "is_stale_session",
    "require",
    "unique_name",
]

#: Every Docker object a test creates carries ``watchdogd.test=1``.
TEST_LABEL = "watchdogd.test"
#: ... and ``watchdogd.test.session=<SESSION_ID>``, so that two pytest sessions sharing one
#: engine clean up only their own objects. The id starts with the pytest process's pid.
SESSION_LABEL = "watchdogd.test.session"
SESSION_ID = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

_names = itertools.count(1)


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where nothing may be skipped."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require(condition: object, what: str) -> None:
    """Skip the test when ``condition`` is false; fail it instead when ``CI=true``.

    ``what`` names the missing thing, e.g. ``"redis-server binary"``.
    """
    if condition:
        return
    if in_ci():
        pytest.fail(f"{what} is not available (CI=true: no silent skips in CI)", pytrace=False)
    pytest.skip(f"{what} is not available")


def docker_labels(**extra: str) -> dict[str, str]:
    """The labels every Docker object created by a test must carry (plus ``extra``)."""
    return {TEST_LABEL: "1", SESSION_LABEL: SESSION_ID, **extra}


def unique_name(prefix: str = "wdt") -> str:
    """A container/network name unique to this session, e.g. ``wdt-1234-ab12cd34-7``."""
    return f"{prefix}-{SESSION_ID}-{next(_names)}"


def is_stale_session(session: str) -> bool:
    """True when ``session`` (a :data:`SESSION_ID`) belongs to a pytest process that is gone."""
    pid = session.split("-", 1)[0]
    if not pid.isdigit() or session == SESSION_ID:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
