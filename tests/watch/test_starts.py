"""``Starts``: what tells somebody's ``docker restart`` from a crash the restart policy
answered and from a new container's first start, on the engine's own inspect fields."""

from __future__ import annotations

from typing import Any

from watchdogd.model import NEVER_STARTED, Starts


def inspect(
    cid: str, started_at: str, restarts: int = 0, *, restarting: bool = False
) -> dict[str, Any]:
    state = {"StartedAt": started_at, "Restarting": restarting}
    return {"Id": cid, "State": state, "RestartCount": restarts}


def starts(*inspects: dict[str, Any]) -> Starts:
    return Starts.of(inspects)


def test_a_docker_restart_is_the_same_container_started_later() -> None:
    before = starts(inspect("c1", "2026-12-01T00:00:00Z"))
    after = starts(inspect("c1", "2026-12-01T00:05:00Z"))
    assert after.started_again_since(before)


def test_a_crash_the_restart_policy_answered_is_not() -> None:
    before = starts(inspect("c1", "2026-12-01T00:00:00Z", restarts=2))
    after = starts(inspect("c1", "2026-12-01T00:05:00Z", restarts=3))
    assert not after.started_again_since(before)


def test_a_start_the_policy_had_pending_is_not() -> None:
    """The engine raises the count when the container exits, then waits out its restart delay
    (``restarting``): a first look in that state already has the raised count."""
    before = starts(inspect("c1", "2026-12-01T00:00:00Z", restarts=1, restarting=True))
    after = starts(inspect("c1", "2026-12-01T00:00:02Z", restarts=1))
    assert not after.started_again_since(before)


def test_a_created_containers_first_start_is_not() -> None:
    """``docker run`` is a create (seen by the create event's look) then a start."""
    before = starts(inspect("c1", NEVER_STARTED))
    after = starts(inspect("c1", "2026-12-01T00:05:00Z"))
    assert not after.started_again_since(before)
    assert not starts(inspect("c1", "")).started_again_since(before)


def test_a_new_container_is_not_and_nothing_changed_is_not() -> None:
    before = starts(inspect("c1", "2026-12-01T00:00:00Z"))
    assert not starts(inspect("c2", "2026-12-01T00:05:00Z")).started_again_since(before)
    assert not starts(inspect("c1", "2026-12-01T00:00:00Z")).started_again_since(before)


def test_one_replica_of_two_restarted_is() -> None:
    before = starts(inspect("a", "2026-12-01T00:00:00Z"), inspect("b", "2026-12-01T00:00:01Z"))
    after = starts(inspect("a", "2026-12-01T00:00:00Z"), inspect("b", "2026-12-01T00:07:00Z"))
    assert after.started_again_since(before)


def test_a_paused_or_stopped_container_is_held() -> None:
    """Paused is read from inspect; a stop on request is the engine's answer, passed in."""
    paused = {"Id": "a", "State": {"StartedAt": "2026-12-01T00:00:00Z", "Paused": True}}
    assert Starts.of([paused]).held == {"a"}
    assert Starts.of([inspect("b", "2026-12-01T00:00:00Z")], frozenset({"b"})).held == {"b"}
    assert starts(inspect("c", "2026-12-01T00:00:00Z")).held == frozenset()
