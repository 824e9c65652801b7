"""A bake judges nobody while the engine is away and for RESTART_GRACE after it is back
(``deploy.engine_watch``), asked of a probe that fails like an engine away."""

from __future__ import annotations

from watchdogd.deploy.engine_watch import ASK_EVERY, EngineOutage
from watchdogd.errors import TargetError


class Engine:
    def __init__(self) -> None:
        self.away = False
        self.asked = 0

    async def inspect(self) -> object:
        self.asked += 1
        if self.away:
            raise TargetError("inspect container app-green-1: connection refused")
        return {}


async def test_away_then_back_then_judged_after_the_grace() -> None:
    engine, clock = Engine(), [0.0]
    outage = EngineOutage(engine.inspect, grace=10.0, clock=lambda: clock[0])
    assert not await outage.holds(0.0)
    assert not outage.watching
    engine.away = True
    assert await outage.holds(2.0)
    assert outage.watching
    engine.away = False
    clock[0] = 5.0  # the answer came at 5 s, though the tick that asked was at 3 s
    assert await outage.holds(3.0)  # back: the restarted containers get their grace
    assert await outage.holds(14.0)
    assert not await outage.holds(15.5)
    assert not outage.watching


async def test_asked_once_a_second_at_most() -> None:
    engine = Engine()
    outage = EngineOutage(engine.inspect, grace=10.0)
    engine.away = True
    for tick in range(20):
        assert await outage.holds(tick * 0.05)
    assert engine.asked == 1
    assert await outage.holds(ASK_EVERY)
    assert engine.asked == 2
