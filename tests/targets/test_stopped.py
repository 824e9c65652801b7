"""``StopMemory``: the engine is asked about a stop once, only for an exited container, and
asked again when it could not answer."""

from __future__ import annotations

from typing import Any

import pytest

from watchdogd.errors import TargetError
from watchdogd.targets.stopped import StopMemory, unix_seconds

STARTED = "2026-12-01T03:09:56.350766462Z"


def test_docker_times_are_read_to_the_nanosecond_and_others_are_not() -> None:
    assert unix_seconds("2026-12-01T03:09:56Z") == 1796094596.0
    assert abs(unix_seconds(STARTED) - 1796094596.350766462) < 1e-6  # type: ignore[operator]
    assert unix_seconds("0001-01-01T00:00:00Z") is not None
    assert unix_seconds("yesterday") is None
    assert unix_seconds("") is None


class Engine:
    """Answers ``stop_requested`` from ``stops``; fails while ``failures`` are left."""

    def __init__(self, stops: set[str], failures: int = 0) -> None:
        self.stops = stops
        self.failures = failures
        self.asked: list[tuple[str, float]] = []

    async def stop_requested(self, container: str, since: float) -> bool:
        self.asked.append((container, since))
        if self.failures:
            self.failures -= 1
            raise TargetError("events: connection refused")
        return container in self.stops


def exited(cid: str, finished: str = "2026-12-01T03:10:00Z", started: str = STARTED) -> Any:
    return {"Id": cid, "State": {"Status": "exited", "StartedAt": started, "FinishedAt": finished}}


def running(cid: str) -> Any:
    return {"Id": cid, "State": {"Status": "running", "StartedAt": STARTED}}


async def test_only_exited_containers_are_asked_about_since_their_start() -> None:
    engine: Any = Engine({"a"})
    memory = StopMemory()
    assert await memory.stopped_on_request(engine, [exited("a"), running("b")]) == {"a"}
    assert [cid for cid, _ in engine.asked] == ["a"]
    assert abs(engine.asked[0][1] - unix_seconds(STARTED)) < 1e-6  # type: ignore[operator]


async def test_one_stop_is_asked_about_once_and_the_next_stop_again() -> None:
    engine: Any = Engine(set())
    memory = StopMemory()
    for _ in range(3):
        assert await memory.stopped_on_request(engine, [exited("a")]) == frozenset()
    assert len(engine.asked) == 1
    engine.stops.add("a")
    later = exited("a", finished="2026-12-01T04:00:00Z")
    assert await memory.stopped_on_request(engine, [later]) == {"a"}
    assert len(engine.asked) == 2


async def test_an_engine_that_could_not_answer_fails_the_look_and_is_asked_again() -> None:
    """An exit nobody can explain is not taken for a crash (a stopping engine stops the
    containers and may no longer say so)."""
    engine: Any = Engine({"a"}, failures=1)
    memory = StopMemory()
    with pytest.raises(TargetError, match="cannot say why a stopped"):
        await memory.stopped_on_request(engine, [exited("a"), running("b")])
    assert await memory.stopped_on_request(engine, [exited("a"), running("b")]) == {"a"}
    assert len(engine.asked) == 2


async def test_the_answers_given_are_kept_when_another_could_not_be() -> None:
    engine: Any = Engine({"a"}, failures=0)
    memory = StopMemory()
    assert await memory.stopped_on_request(engine, [exited("a")]) == {"a"}
    engine.failures = 1
    with pytest.raises(TargetError, match="cannot say why b stopped"):
        await memory.stopped_on_request(engine, [exited("a"), exited("b")])
    assert [cid for cid, _ in engine.asked] == ["a", "b"]


async def test_a_container_never_started_is_not_asked_about() -> None:
    engine: Any = Engine({"a"})
    never = exited("a", started="0001-01-01T00:00:00Z")
    assert await StopMemory().stopped_on_request(engine, [never]) == frozenset()
    assert engine.asked == []
