"""Keeps background tasks alive: a task that crashes is logged, counted and restarted with
backoff; it never takes the daemon down. Strong references are held so no task is garbage
collected mid-flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from watchdogd.metrics.registry import Metrics

log = structlog.get_logger(__name__)

MAX_BACKOFF = 30.0


class Supervisor:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run ``factory()`` under supervision as task ``name`` (replacing one of that name)."""
        self.stop(name)
        self._tasks[name] = asyncio.create_task(self._keep_alive(name, factory), name=name)

    def stop(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()

    def names(self) -> list[str]:
        return list(self._tasks)

    async def stop_all(self, timeout: float = 5.0) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _keep_alive(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        backoff = 0.5
        while True:
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._metrics.task_restarts.labels(name).inc()
                log.exception("task_restarted", task=name, backoff_seconds=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            else:
                return  # a task that ends by itself is done
