"""Green on user traffic, step by step, until promotion or a switch back.

A blue-green bake is one step: green at 100 % for the bake time, blue on standby. A canary
(``strategy: canary``) is several: green at each step's weight, blue serving the rest, both
judged on their own requests. A step ends when ``core.deploy_plan.step_verdict`` says so: its
time is up, green served enough requests, and, for a canary, every gate of green is ``ok``
(``unknown`` waits: too little evidence to expose more users). At each new step both windows
start empty, so that blue's baseline covers the same time as green's requests.

A breach at any step switches every request back to blue at once (``Deployment.switch_back``),
and so does a playbook the target's own gates, an alert or an operator started against green.
An operator may pause (the step's clock stops; the gates still judge, and a breach still
switches back), resume, promote now, or abort (a switch back, as for a breach).
"""

from __future__ import annotations

import asyncio
import re
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from watchdogd.config.traffic import TrafficConfig
from watchdogd.core.deploy_plan import FULL_WEIGHT, Stage, Step, StepClock, step_verdict
from watchdogd.deploy.engine_watch import EngineOutage
from watchdogd.deploy.parts import Hooks, Side
from watchdogd.deploy.proxy import Proxy, Slot
from watchdogd.deploy.windows import (
    CounterFeed,
    ServerTraffic,
    TrafficJudge,
    TrafficWindows,
    breached,
    pending,
)
from watchdogd.errors import ControlRefused, TrafficError

if TYPE_CHECKING:
    from watchdogd.engine.docker_api import DockerEngine

BAKE_TICK = 0.05
SAY_AGAIN = 15.0
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


class Order(StrEnum):
    """What an operator may ask of a running deploy."""

    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    ABORT = "abort"


class Baking(Protocol):
    """What a bake asks of its deploy (``deploy.deployment.Deployment``)."""

    image: str
    stage: Stage
    proxy: Proxy
    windows: TrafficWindows
    hooks: Hooks
    numbers: dict[str, Any]

    @property
    def target_traffic(self) -> TrafficConfig: ...

    def slots(self) -> tuple[Slot, Slot]: ...

    @property
    def engine(self) -> DockerEngine: ...

    @property
    def green(self) -> Side: ...

    def watch_windows(self, *, blue_too: bool) -> None: ...

    def journal(self) -> None: ...

    def detected(self, now: float) -> None: ...

    async def say(self, line: str) -> None: ...

    async def switch_back(
        self, reason: str, numbers: dict[str, Any], *, playbook: bool = True
    ) -> None: ...

    async def promote(self, why: str) -> None: ...


class Bake:
    """The steps of one deploy, from the switch to promotion or a switch back."""

    def __init__(self, deployment: Baking, plan: list[Step], *, canary: bool) -> None:
        self._deploy = deployment
        self.plan = plan
        self.canary = canary
        self.index = 0
        self.clock = StepClock(time.monotonic())
        self.verdicts: list[str] = ["" for _ in plan]
        self._wanted: Order | None = None
        self._playbook_switch_tried = False
        self._judge = TrafficJudge(deployment.target_traffic.gates)
        self._engine = EngineOutage(
            lambda: deployment.engine.inspect_container(deployment.green.container)
        )

    @property
    def step(self) -> Step:
        return self.plan[self.index]

    def progress(self) -> dict[str, Any]:
        """What status, the API and the journal show of the bake."""
        return {
            "strategy": "canary" if self.canary else "blue_green",
            "step": self.index + 1,
            "steps": [
                {"weight": step.weight, "for": step.duration, "verdict": verdict}
                for step, verdict in zip(self.plan, self.verdicts, strict=True)
            ],
            "weight": self.step.weight,
            "paused": self.clock.paused,
        }

    # --- the operator ----------------------------------------------------------------------

    def order(self, order: Order) -> str:
        """Take an operator's order; raises ``ControlRefused`` (409) when it does not apply."""
        now = time.monotonic()
        if order is Order.PAUSE:
            if not self.clock.pause(now):
                raise ControlRefused(409, "the deploy is already paused")
            return "paused: the step's clock stopped; the gates still judge green"
        if order is Order.RESUME:
            if not self.clock.resume(now):
                raise ControlRefused(409, "the deploy is not paused")
            return "resumed"
        if self._wanted is not None:
            raise ControlRefused(409, f"{self._wanted.value} was already asked")
        self._wanted = order
        return "promoting now" if order is Order.PROMOTE else "aborting: switching back to blue"

    # --- the run -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Hold each step, then promote; returns early when green was switched back."""
        deploy = self._deploy
        for index in range(len(self.plan)):
            if index > 0:
                await self._next_step(index)
            if not await self._hold():
                return
            if self._wanted is Order.PROMOTE:
                break
        deploy.windows.forget(deploy.proxy.backend, deploy.slots()[0].server)
        deploy.numbers.update(requests=self._green().requests, errors=self._green().errors)
        why = self.verdicts[self.index] or "promoted by an operator"
        if self._wanted is Order.PROMOTE:
            why = f"promoted by an operator at {self.step.label(self.index, len(self.plan))}"
        await deploy.promote(why)

    async def _next_step(self, index: int) -> None:
        deploy = self._deploy
        self.index = index
        self.clock = StepClock(time.monotonic())
        blue, green = deploy.slots()
        deploy.watch_windows(blue_too=self.step.weight < FULL_WEIGHT)
        await deploy.proxy.share(green, blue, self.step.weight)
        deploy.journal()
        label = self.step.label(index, len(self.plan))
        await deploy.say(f"{label}: green takes {self.step.weight} % of the requests")
        await deploy.hooks.notify(
            "deploy_step", f"{label}: {deploy.image} at {self.step.weight} %", self.progress()
        )

    async def _hold(self) -> bool:
        """Judge green through the current step; False once it was switched back."""
        deploy = self._deploy
        counters = (
            None
            if deploy.target_traffic.haproxy.log_socket
            else CounterFeed(deploy.proxy, deploy.windows)
        )
        said, said_at = "", 0.0
        while deploy.stage is Stage.BAKING:
            now = time.monotonic()
            blue, green = deploy.slots()
            if counters is not None:
                await counters.poll([green.server, blue.server], now)
            results = self._judge.evaluate(self._green(), now, self._blue())
            bad = breached(results)
            if (bad is not None or self._engine.watching) and await self._engine.holds(now):
                # The engine took green (and blue) away: no verdict, and afresh once back.
                deploy.watch_windows(blue_too=self.step.weight < FULL_WEIGHT)
                self._judge = TrafficJudge(deploy.target_traffic.gates)
                await asyncio.sleep(BAKE_TICK)
                continue
            if deploy.hooks.playbook_running() and await self._switched_for_playbook():
                break
            if bad is not None:
                deploy.detected(now)
                numbers = {"gate": bad.gate, "value": bad.value, "threshold": bad.threshold}
                deploy.numbers.update(numbers, step=self.index + 1)
                # A canary's reason names the step; a blue-green bake has one.
                at = f" at {self.step.label(self.index, len(self.plan))}" if self.canary else ""
                await deploy.switch_back(f"green breached {bad.gate}{at}: {bad.reason}", numbers)
                break
            if self._wanted is Order.ABORT:
                deploy.detected(now)
                await deploy.switch_back("aborted by an operator", {"step": self.index + 1})
                break
            if self._wanted is Order.PROMOTE:
                return True
            ready, why = self._verdict(results, now)
            if ready:
                self.verdicts[self.index] = why
                deploy.journal()
                return True
            # Once per kind of wait (numbers aside), and every SAY_AGAIN s while it lasts.
            kind = _NUMBERS.sub("#", why)
            if not why.startswith("baking,") and (kind != said or now - said_at > SAY_AGAIN):
                await deploy.say(why)
                said, said_at = kind, now
            await asyncio.sleep(BAKE_TICK)
        return False

    async def _switched_for_playbook(self) -> bool:
        """The target's own gates, an alert or an operator started the playbook against
        green: users go back to blue now, not when it reaches its rollback step. Tried once:
        when HAProxy refuses, the playbook's rollback step tries again, and fails loudly."""
        if self._playbook_switch_tried:
            return False
        self._playbook_switch_tried = True
        deploy = self._deploy
        try:
            await deploy.switch_back(
                "the target's playbook started against green",
                {"step": self.index + 1},
                playbook=False,
            )
        except TrafficError as err:
            await deploy.say(f"switch back to blue not applied ({err}); the playbook tries again")
            return False
        return True

    def _verdict(self, results: list[Any], now: float) -> tuple[bool, str]:
        if self.clock.paused:
            return False, "paused by an operator"
        return step_verdict(
            step=self.step,
            elapsed=self.clock.elapsed(now),
            verdicts={r.gate: r.verdict for r in results},
            reasons={r.gate: r.reason for r in results},
            strict=self.canary,
            requests=self._green().requests,
            min_requests=self._deploy.target_traffic.min_requests,
            breach_pending=pending(results),
        )

    def _green(self) -> ServerTraffic:
        return self._window(self._deploy.slots()[1].server)

    def _blue(self) -> ServerTraffic | None:
        if self.step.weight >= FULL_WEIGHT:
            return None  # blue serves nothing: there is no baseline to compare with
        return self._window(self._deploy.slots()[0].server)

    def _window(self, server: str) -> ServerTraffic:
        deploy = self._deploy
        found = deploy.windows.get(deploy.proxy.backend, server)
        if found is None:  # forgotten meanwhile: the deploy starts both afresh, as a step does
            deploy.watch_windows(blue_too=True)
            found = deploy.windows.get(deploy.proxy.backend, server)
        assert found is not None  # noqa: S101 - just watched
        return found
