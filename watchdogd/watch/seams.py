"""The seams of the watch layer: what a controller is given, as small protocols and types.

The daemon's wiring passes these in explicitly; nothing in ``watch`` reaches back into the
daemon, the metrics registry or the notifiers' configuration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

#: A clock in seconds: ``time.monotonic`` for decisions, ``time.time`` for the store.
Clock = Callable[[], float]

#: Tells every notifier about something outside a playbook: ``notify(target, message)``.
Notify = Callable[[str, str], Awaitable[None]]


async def tell_nobody(_target: str, _message: str) -> None:
    """The ``Notify`` of a controller without notifiers (unit tests, tools)."""


class RollbackMetrics(Protocol):
    """Where the controller counts a finished playbook (``metrics.registry.Metrics``)."""

    def rollback_finished(
        self, target: str, trigger: str, result: str, seconds: float, at: float
    ) -> None: ...
