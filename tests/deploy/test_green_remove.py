"""Removing green outlasts an engine restart: the journal says green is gone once
``remove_quietly`` returns, and a green left in a restarting engine would come back, running
and unrecorded (the soak found one after an engine restart during pre-checks)."""

from __future__ import annotations

from typing import Any

from watchdogd.deploy.green import remove_quietly
from watchdogd.errors import ObjectMissing, TargetError


class RestartingEngine:
    """Refuses ``failures`` removals (the engine is away), then removes."""

    def __init__(self, failures: int, missing: bool = False) -> None:
        self.failures = failures
        self.missing = missing
        self.calls: list[str] = []
        self.removed: list[str] = []

    async def remove(self, name: str, *, force: bool = False) -> None:
        self.calls.append(name)
        if self.failures:
            self.failures -= 1
            raise TargetError(f"remove container {name}: connection refused")
        if self.missing:
            raise ObjectMissing(f"remove container {name}: no such container")
        self.removed.append(name)


async def test_green_is_removed_once_the_engine_is_back() -> None:
    engine: Any = RestartingEngine(failures=3)
    await remove_quietly(engine, "app-green-1", patience=30.0)
    assert engine.removed == ["app-green-1"]
    assert len(engine.calls) == 4


async def test_a_green_already_gone_is_removed() -> None:
    engine: Any = RestartingEngine(failures=1, missing=True)
    await remove_quietly(engine, "app-green-1", patience=30.0)
    assert engine.calls == ["app-green-1", "app-green-1"]
    assert engine.removed == []


async def test_an_engine_that_never_comes_back_is_given_up_on() -> None:
    engine: Any = RestartingEngine(failures=1000)
    await remove_quietly(engine, "app-green-1", patience=0.5)
    assert engine.removed == []
    assert 1 < len(engine.calls) < 10
