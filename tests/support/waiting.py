"""Waiting for something to happen, in one place: poll a condition until it holds.

Tests wait for outcomes, never for a fixed time, and make no timing assertions: ``timeout``
is a generous bound that only ends a test that would otherwise hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_for"]

T = TypeVar("T")


def wait_for(
    what: str,
    condition: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    ignore: tuple[type[BaseException], ...] = (),
    context: Callable[[], str] | None = None,
) -> T:
    """``condition()``'s first truthy value. Exceptions in ``ignore`` count as "not yet";
    after ``timeout`` an ``AssertionError`` names ``what`` and adds ``context()`` (a log's
    tail, say)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except ignore:
            result = None  # type: ignore[assignment]
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f"\n{context()}" if context is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)
