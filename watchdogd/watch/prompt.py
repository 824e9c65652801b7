"""Evaluate a target as soon as a sample may breach a gate, not only at its next tick.

A recorder calls its prompt on a failure, a slow sample or a probe waiting past a threshold,
so a verdict does not depend on where the once-a-second tick falls (the hard-down span and
the slow runs are judged on samples as they come). One evaluation at a time: a prompt while
one is pending does nothing. The prompt holds the controller's ``tick`` weakly: the recorders
hold the prompt, and must not keep a dropped controller alive.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable

import structlog

from watchdogd.watch.seams import Clock

log = structlog.get_logger(__name__)


class EvaluationPrompt:
    def __init__(self, tick: Callable[[float], Awaitable[None]], clock: Clock, name: str) -> None:
        self._tick = weakref.WeakMethod(tick)
        self._clock = clock
        self._name = name
        #: False once the daemon stops making decisions (shutdown): no evaluation on evidence.
        self.deciding = True
        self._pending: asyncio.Task[None] | None = None

    def __call__(self) -> None:
        if not self.deciding or (self._pending is not None and not self._pending.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a sample fed from outside the daemon's loop (tests): the tick will do
        self._pending = loop.create_task(self._evaluate(), name=f"evaluate:{self._name}")

    async def _evaluate(self) -> None:
        tick = self._tick()
        if tick is None:
            return  # the controller is gone (a reload dropped its target)
        try:
            await tick(self._clock())
        except Exception:  # the next tick tries again; the daemon must outlive this
            log.exception("evaluation_crashed", target=self._name)
