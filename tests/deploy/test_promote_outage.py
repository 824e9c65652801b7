"""A promotion outlasts an engine outage: green is judged good and serves, and a promotion that
failed on the first refused call left blue and green both running with no open deploy (the
30-minute soak's one violation). It is tried again, each step idempotent, while the engine
does not answer."""

from __future__ import annotations

from typing import Any

import pytest

from watchdogd.deploy.green import promote, through_outage
from watchdogd.errors import ObjectMissing, TargetError


class OutageEngine:
    """Containers by name; every call fails while ``away`` calls are left (the engine is
    restarting), then the calls act on the names."""

    def __init__(self, names: set[str], away: int = 0) -> None:
        self.names = set(names)
        self.away = away
        self.calls: list[str] = []

    def _answer(self, call: str) -> None:
        self.calls.append(call)
        if self.away:
            self.away -= 1
            raise TargetError(f"{call}: connection refused")

    async def inspect_container(self, name: str) -> dict[str, Any] | None:
        self._answer(f"inspect {name}")
        return {"Name": f"/{name}"} if name in self.names else None

    async def stop(self, name: str, timeout: float) -> None:
        self._answer(f"stop {name}")
        if name not in self.names:
            raise ObjectMissing(f"stop {name}: no such container")

    async def remove(self, name: str, *, force: bool = False) -> None:
        self._answer(f"remove {name}")
        if name not in self.names:
            raise ObjectMissing(f"remove {name}: no such container")
        self.names.discard(name)

    async def rename(self, old: str, new: str) -> None:
        self._answer(f"rename {old}")
        self.names.discard(old)
        self.names.add(new)


async def _patiently(engine: Any, patience: float = 30.0) -> list[str]:
    heard: list[str] = []

    async def waiting(err: TargetError) -> None:
        heard.append(str(err))

    await through_outage(
        lambda: promote(engine, "app", "app-green-1", 1.0), patience=patience, waiting=waiting
    )
    return heard


async def test_a_promotion_cut_by_an_outage_finishes_once_the_engine_is_back() -> None:
    engine = OutageEngine({"app", "app-green-1"}, away=3)
    heard = await _patiently(engine)
    assert engine.names == {"app"}  # blue retired, green under its name
    assert heard == ["inspect app: connection refused"]  # said once, not at every try
    assert engine.calls.count("rename app-green-1") == 1


async def test_each_step_done_before_the_outage_is_not_done_again() -> None:
    """The engine went away after blue was removed: the next try only renames green."""
    engine = OutageEngine({"app-green-1"})
    await _patiently(engine)
    assert engine.names == {"app"}
    assert not any(call.startswith(("stop", "remove")) for call in engine.calls)


async def test_a_promotion_already_done_does_nothing() -> None:
    engine = OutageEngine({"app"})
    await _patiently(engine)
    assert engine.names == {"app"}
    assert engine.calls == ["inspect app", "inspect app-green-1"]


async def test_a_green_that_is_gone_fails_at_once() -> None:
    """Nothing to wait for: the engine answered, and green is not there."""
    engine = OutageEngine({"app"}, away=0)
    engine.names = {"other"}
    with pytest.raises(ObjectMissing, match="app-green-1 is gone"):
        await _patiently(engine)
    assert len(engine.calls) == 2


async def test_an_engine_that_never_comes_back_is_given_up_on() -> None:
    engine = OutageEngine({"app", "app-green-1"}, away=1000)
    with pytest.raises(TargetError, match="connection refused"):
        await _patiently(engine, patience=0.5)
    assert engine.names == {"app", "app-green-1"}
    assert 1 < len(engine.calls) < 10
