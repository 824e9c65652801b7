"""``TrafficDriver`` while green serves: what the controller learns of green's container.

Pure unit tests: the engine is a fake that answers inspect and the events question. The
real-engine side (a stopping engine that stops green) is the soak's, seed 16.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from watchdogd.core.deploy_plan import Stage
from watchdogd.deploy.driver import TrafficDriver
from watchdogd.deploy.parts import Side
from watchdogd.errors import TargetError
from watchdogd.model import Release, Starts

STARTED = "2026-12-01T03:09:56Z"
GREEN = Release(target="shop", image="sha256:green", config_hash="c")
BLUE = Release(target="shop", image="sha256:blue", config_hash="c")


@dataclass
class Engine:
    state: dict[str, Any]
    stopped_on_request: bool | None  # None: the engine cannot say
    asked: int = 0

    async def inspect_container(self, name: str) -> dict[str, Any] | None:
        return {"Id": "green-id", "Name": f"/{name}", "State": dict(self.state)}

    async def stop_requested(self, container: str, since: float) -> bool:
        self.asked += 1
        if self.stopped_on_request is None:
            raise TargetError("events: connection refused")
        return self.stopped_on_request


@dataclass
class Deploy:
    stage: Stage
    green: Side = field(default_factory=lambda: Side("shop-green", GREEN))


class Inner:
    target = "shop"

    async def current(self) -> Release | None:
        return BLUE

    def starts(self) -> Starts | None:
        return Starts(started=frozenset({("blue-id", STARTED)}), by_policy=0)


def driver(engine: Engine, deploy: Deploy | None) -> TrafficDriver:
    async def repoint() -> None:
        return None

    inner: Any = Inner()
    fake: Any = engine
    active: Any = lambda: deploy  # noqa: E731 - the deploy the manager has on hand
    return TrafficDriver(inner, fake, active, repoint)


def exited() -> dict[str, Any]:
    return {"Status": "exited", "StartedAt": STARTED, "FinishedAt": "2026-12-01T03:10:00Z"}


async def test_green_stopped_on_request_is_held_not_blamed() -> None:
    """A stopping engine stops green (a kill with TERM, then stop): held, as an operator's
    ``docker stop`` would be."""
    traffic = driver(Engine(exited(), stopped_on_request=True), Deploy(Stage.BAKING))
    assert await traffic.current() == GREEN
    starts = traffic.starts()
    assert starts is not None
    assert starts.held == {"green-id"}
    assert starts.started == frozenset()  # green's starts are the deploy's, never somebody's


async def test_green_that_crashed_is_judged() -> None:
    traffic = driver(Engine(exited(), stopped_on_request=False), Deploy(Stage.BAKING))
    assert await traffic.current() == GREEN
    starts = traffic.starts()
    assert starts is not None
    assert starts.held == frozenset()


async def test_green_paused_is_held() -> None:
    paused = {"Status": "paused", "Paused": True, "Running": True, "StartedAt": STARTED}
    engine = Engine(paused, stopped_on_request=False)
    traffic = driver(engine, Deploy(Stage.BAKING))
    await traffic.current()
    starts = traffic.starts()
    assert starts is not None
    assert starts.held == {"green-id"}
    assert engine.asked == 0  # only an exit is asked about


async def test_a_green_exit_the_engine_cannot_explain_fails_the_look() -> None:
    """The controller then reads the engine as away, and judges nobody."""
    traffic = driver(Engine(exited(), stopped_on_request=None), Deploy(Stage.ROLLING_BACK))
    with pytest.raises(TargetError, match="cannot say why"):
        await traffic.current()


async def test_outside_a_deploy_the_inner_driver_answers() -> None:
    engine = Engine(exited(), stopped_on_request=True)
    traffic = driver(engine, Deploy(Stage.PROMOTED))
    assert await traffic.current() == BLUE
    assert traffic.starts() == Inner().starts()
    assert engine.asked == 0
