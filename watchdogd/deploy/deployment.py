"""One blue-green deploy, stage by stage (``core.deploy_plan`` names the stages and rules).

Every stage is journaled before the action that follows it, so a restarted daemon knows which
containers and servers exist (``resume``). Progress lines go to the journal too; the CLI and
the API read them from there.

Rolling back during the bake is a switch. When green's own traffic breaches a gate, the
switch happens at once (blue at full weight: a few milliseconds), then the target's playbook
runs with green as the bad release; its ``rollback`` step, which lands in ``roll_back``,
drains green, puts it in maintenance and removes it. A playbook started by the target's own
gates, an alert or an operator reaches ``roll_back`` through the same step.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from watchdogd.config.schema import TargetConfig
from watchdogd.config.traffic import TrafficConfig
from watchdogd.core.deploy_plan import (
    FULL_WEIGHT,
    GREEN_SERVING,
    ResumeAction,
    Stage,
    Step,
    StepClock,
    can_move,
)
from watchdogd.deploy import green as containers
from watchdogd.deploy.bake import Bake, Order
from watchdogd.deploy.parts import Hooks, Side
from watchdogd.deploy.prechecks import run_prechecks
from watchdogd.deploy.proxy import Proxy, Slot
from watchdogd.deploy.windows import TrafficWindows
from watchdogd.errors import ControlRefused, StoreError, WatchdogError
from watchdogd.model import Release
from watchdogd.playbook.crash_points import pause_at_stage
from watchdogd.sources.probe_client import ProbeClient
from watchdogd.store import Store

if TYPE_CHECKING:
    # Types only: the Docker SDK loads when a deploy touches Docker, not at start (issue #16).
    from watchdogd.engine.docker_api import DockerEngine

log = structlog.get_logger(__name__)

MAX_LOG_LINES = 200


@dataclass
class Deployment:
    target: TargetConfig
    image: str
    engine: DockerEngine
    store: Store
    proxy: Proxy
    windows: TrafficWindows
    client: Callable[[], ProbeClient]
    hooks: Hooks
    bake_time: float
    stop_timeout: float
    secrets: frozenset[str] = frozenset()
    blue: Side = field(default_factory=lambda: Side(""))
    green: Side = field(default_factory=lambda: Side(""))
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    stage: Stage = Stage.STARTED
    reason: str = ""
    lines: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    detected_at: float | None = None
    baking: Bake | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    # --- the journal ------------------------------------------------------------------------

    def body(self) -> dict[str, Any]:
        return {
            "blue": self.blue.to_dict(),
            "green": self.green.to_dict(),
            "lines": self.lines[-MAX_LOG_LINES:],
            "numbers": self.numbers,
            "bake": self.baking.progress() if self.baking is not None else None,
        }

    def journal(self, stage: Stage | None = None, reason: str | None = None) -> None:
        if stage is not None and stage is not self.stage:
            if not can_move(self.stage, stage):
                raise WatchdogError(f"deploy {self.id}: no way from {self.stage} to {stage}")
            self.stage = stage
        if reason is not None:
            self.reason = reason
        self.store.save_deploy(
            self.id,
            target=self.target.name,
            image=self.image,
            stage=self.stage.value,
            reason=self.reason,
            body=self.body(),
        )

    async def reach(self, stage: Stage, reason: str | None = None) -> None:
        """Journal ``stage`` (and honour the TEST-ONLY crash point)."""
        self.journal(stage, reason)
        await pause_at_stage(stage.value)

    async def say(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        self.lines.append(f"{stamp} {line}")
        log.info("deploy", target=self.target.name, deploy=self.id, stage=str(self.stage), msg=line)
        try:
            self.journal()
        except StoreError as err:
            log.error("deploy_journal_failed", deploy=self.id, error=str(err))

    # --- the run -------------------------------------------------------------------------------

    async def run(self) -> Stage:
        """From green's creation to promotion or rollback; never raises."""
        try:
            await self._create_green()
            ok, summary = await self._prechecks()
            if not ok:
                await self.abort(f"green failed its pre-promotion checks: {summary}")
                return self.stage
            await self.say(summary)
            await self._prepare_slot()
            await self.switch(self.target_traffic.plan(self.bake_time))
            await self.bake()
        except asyncio.CancelledError:
            raise  # shutdown: the journal says where it stood, the next start resumes
        except Exception as err:  # the daemon must outlive any deploy failure
            log.exception("deploy_failed", deploy=self.id)
            await self._fail_safe(str(err) or type(err).__name__)
        return self.stage

    async def resume(self, action: ResumeAction) -> Stage:
        """Carry on after a restart (``core.deploy_plan.resume_action``); never raises."""
        try:
            if action is ResumeAction.ABORT:
                await self.abort("watchdogd restarted before any user reached green")
            elif action is ResumeAction.ROLL_BACK:
                await self.roll_back(
                    self.reason
                    or "watchdogd restarted during the bake; green's judgement was "
                    "lost, so users went back to blue (deploy again to retry)"
                )
            elif action is ResumeAction.PROMOTE:
                await self.finish_promotion()
            elif action is ResumeAction.REBAKE:
                await self.switch()
                await self.bake()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the daemon must outlive any deploy failure
            log.exception("deploy_resume_failed", deploy=self.id)
            await self._fail_safe(str(err) or type(err).__name__)
        return self.stage

    async def _create_green(self) -> None:
        token = secrets.token_hex(3)
        self.green = Side(containers.green_name(self.blue.container, token))
        self.journal()  # the name is recorded before the container exists
        assert self.blue.release is not None  # noqa: S101 - set by the manager
        await containers.create_green(
            self.engine, self.blue.release.spec, self.image, self.green.container
        )
        await containers.start_green(self.engine, self.green.container)
        self.green.release = await containers.release_in(
            self.engine, self.target, self.green.container, serving_as=self.blue.container
        )
        endpoint = await containers.endpoint_of(
            self.engine, self.green.container, self.target_traffic.upstream
        )
        self.green.slot = Slot(f"wd-{token}", endpoint)
        await self.reach(Stage.GREEN_CREATED)
        await self.say(
            f"green {self.green.container} started from blue's configuration at {endpoint}"
        )

    @property
    def target_traffic(self) -> TrafficConfig:
        assert self.target.traffic is not None  # noqa: S101 - only traffic targets deploy
        return self.target.traffic

    async def _prechecks(self) -> tuple[bool, str]:
        assert self.green.slot is not None  # noqa: S101 - set by _create_green
        name = self.green.container
        return await run_prechecks(
            self.target,
            self.target_traffic.pre_checks,
            self.green.slot.endpoint,
            self.client(),
            secrets=self.secrets,
            health=lambda: containers.health_state(self.engine, name),
            progress=self.say,
        )

    async def _prepare_slot(self) -> None:
        # HAProxy gets green's server with the switch itself (added at weight 0, in
        # maintenance, then enabled): nothing reaches it before that.
        await self.reach(Stage.GREEN_READY)

    def slots(self) -> tuple[Slot, Slot]:
        """Blue's and green's servers."""
        assert self.blue.slot is not None  # noqa: S101 - set when the deploy started
        assert self.green.slot is not None  # noqa: S101 - set when green was created
        return self.blue.slot, self.green.slot

    def watch_windows(self, *, blue_too: bool) -> None:
        """Start green's window (and blue's, for a baseline), empty."""
        blue, green = self.slots()
        traffic = self.target_traffic
        for server in (green.server, blue.server) if blue_too else (green.server,):
            self.windows.watch(
                self.proxy.backend, server, traffic.latency_thresholds, traffic.window
            )

    def detected(self, now: float) -> None:
        self.detected_at = now
        self.numbers["detected_at"] = time.time()

    async def switch(self, plan: list[Step] | None = None) -> None:
        """Users to green (its first step's weight). Journaled first: from here a crash
        resumes with green judged. ``plan`` None: one step at 100 % for the bake time."""
        canary = plan is not None and self.target_traffic.strategy == "canary"
        self.baking = Bake(self, plan or [Step(FULL_WEIGHT, self.bake_time)], canary=canary)
        await self.reach(Stage.SWITCHING)
        blue, green = self.slots()
        first = self.baking.step
        self.watch_windows(blue_too=first.weight < FULL_WEIGHT)
        await self.proxy.share(green, blue, first.weight)
        self.baking.clock = StepClock(time.monotonic())
        await self.reach(Stage.BAKING)
        await self.hooks.observe()
        label = first.label(0, len(self.baking.plan)) if canary else "traffic switched to green"
        await self.say(f"{label}; baking for {first.duration:g} s")
        await self.hooks.notify(
            "deploy_switched",
            f"{label}: {self.image} takes {first.weight} % of the requests; blue keeps running",
            {"bake_time": self.bake_time, **self.baking.progress()},
        )

    async def bake(self) -> None:
        """Green's steps (``deploy.bake``), then, if it was switched back, the rollback."""
        assert self.baking is not None  # noqa: S101 - set by switch
        await self.baking.run()
        await self._wait_rolled_back()

    def order(self, order: Order) -> str:
        """An operator's pause, resume, promote or abort; ``ControlRefused`` when it does
        not apply now (only while green is judged on user traffic)."""
        if self.stage is not Stage.BAKING or self.baking is None:
            raise ControlRefused(
                409, f"the deploy is at stage {self.stage.value}: orders apply while it bakes"
            )
        said = self.baking.order(order)
        self.journal()
        return said

    # --- going back ------------------------------------------------------------------------

    async def switch_back(
        self, reason: str, numbers: dict[str, Any], *, playbook: bool = True
    ) -> None:
        """Blue to full weight now, then the playbook (whose rollback step drains green);
        ``playbook`` False: one already runs. The switch comes before the journal: a crash in
        between rolls back too (see ``core.deploy_plan``), and users wait for no disk write."""
        async with self._lock:
            if self.stage not in GREEN_SERVING:
                return
            blue, green = self.slots()
            await self.proxy.switch(blue, [green])
            switched = time.monotonic()
            self.journal(Stage.ROLLING_BACK, reason)
            if self.detected_at is not None:
                # Up to the switch applied and verified, green drained included: an upper
                # bound of the time until blue served every new request.
                self.numbers["switch_back_ms"] = round((switched - self.detected_at) * 1000, 2)
            self.numbers.update(self._green_numbers())
            self.journal()
        await self.say(f"switched back to blue: {reason}")
        if not playbook:
            return
        refusal = await self.hooks.start_playbook(reason, numbers)
        if refusal is not None:
            await self.say(f"playbook not started ({refusal}); rolling back without it")
            await self.roll_back(reason)

    async def roll_back(self, reason: str) -> None:
        """Blue serves everything, green drained, in maintenance and removed. Idempotent."""
        async with self._lock:
            if self.stage in GREEN_SERVING:
                self.journal(Stage.ROLLING_BACK, reason)
            if self.stage is not Stage.ROLLING_BACK:
                return
            blue, green = self.slots()
            # Idempotent: after an immediate switch back it only checks that it holds.
            await self.proxy.switch(blue, [green])
            self.numbers.update(self._green_numbers())
            self.proxy.keep(blue, [])
            await self.proxy.remove(green)
            self.windows.forget(self.proxy.backend, green.server)
            await containers.remove_quietly(self.engine, self.green.container)
            self.journal(Stage.ROLLED_BACK)
        await self.say("rolled back: green drained, in maintenance and removed; blue serves")
        await self.hooks.observe()
        await self.hooks.notify("deploy_rolled_back", f"rolled back: {self.reason}", self.numbers)

    async def _wait_rolled_back(self) -> None:
        """The playbook's rollback step finishes the rollback; if the playbook ends without
        it (refused, aborted at an earlier step), finish it here."""
        while self.stage is Stage.ROLLING_BACK:
            if not self.hooks.playbook_running():
                await asyncio.sleep(0.5)  # let a just-finished step land
                if self.stage is Stage.ROLLING_BACK:
                    await self.roll_back(self.reason)
                break
            await asyncio.sleep(0.1)

    def _green_numbers(self) -> dict[str, Any]:
        if self.green.slot is None:
            return {}
        traffic = self.windows.get(self.proxy.backend, self.green.slot.server)
        if traffic is None:
            return {}
        return {"green_requests": traffic.requests, "green_errors": traffic.errors}

    async def abort(self, reason: str) -> None:
        """Before any switch: remove green (and its server); blue never stopped serving.
        Removed before the journal says so: a crash in between only removes it again."""
        self.reason = reason
        if self.green.slot is not None:
            await self.proxy.remove(self.green.slot)
        if self.green.container:
            await containers.remove_quietly(self.engine, self.green.container)
        self.journal(Stage.ABORTED, reason)
        await self.say(f"deploy stopped before any user reached green: {reason}")
        await self.hooks.notify("deploy_rolled_back", f"not deployed: {reason}", self.numbers)

    async def _fail_safe(self, error: str) -> None:
        """An unexpected error: whatever stage, end with blue serving if at all possible."""
        try:
            if self.stage in (Stage.STARTED, Stage.GREEN_CREATED, Stage.GREEN_READY):
                await self.abort(f"deploy failed: {error}")
            elif self.stage in GREEN_SERVING or self.stage is Stage.ROLLING_BACK:
                if self.stage is not Stage.ROLLING_BACK:
                    self.journal(Stage.ROLLING_BACK, f"deploy failed: {error}")
                await self.roll_back(self.reason)
            elif self.stage is Stage.PROMOTING:
                self.journal(Stage.FAILED, f"promotion failed: {error}")
                await self.say(f"promotion failed: {error}; green serves, blue may still run")
                await self.hooks.notify(
                    "deploy_failed", f"DEPLOY FAILED: promotion failed: {error}", self.numbers
                )
        except Exception as again:
            reason = f"{error}; and restoring blue failed too: {again}"
            log.error("deploy_failed_unsafe", deploy=self.id, error=reason)
            with contextlib.suppress(WatchdogError):
                self.journal(Stage.FAILED, reason)
            await self.hooks.notify("deploy_failed", f"DEPLOY FAILED: {reason}", self.numbers)

    # --- going forward -----------------------------------------------------------------------

    async def _retire_blue_container(self) -> Release | None:
        """Blue's container retired, green under its name, and the release that now runs:
        under blue's name green may fingerprint differently (its own name among its network
        aliases), and the release that runs is the one that passed."""
        await containers.promote(
            self.engine, self.blue.container, self.green.container, self.stop_timeout
        )
        return await containers.release_in(self.engine, self.target, self.blue.container)

    async def promote(self, why: str) -> None:
        assert self.green.release is not None  # noqa: S101 - set by _create_green
        await self.reach(Stage.PROMOTING, why)
        await self.hooks.mark_known_good(self.green.release)
        await self.finish_promotion()

    async def finish_promotion(self) -> None:
        """Retire blue (server and container), give green blue's name. Idempotent.

        An engine that does not answer (a restart) is waited for, up to
        ``containers.PROMOTE_PATIENCE``, with the deploy open at ``promoting``: green is judged
        good and serves, and failing here would leave blue and green both running with no
        deploy to finish the job (found by the soak)."""
        blue, green = self.slots()
        await self.proxy.switch(green, [blue])
        if blue.dynamic:
            self.proxy.keep(green, [])
            await self.proxy.remove(blue)
        else:
            self.proxy.keep(green, [blue])  # a static server stays, in maintenance
        renamed = await containers.through_outage(
            self._retire_blue_container,
            patience=containers.PROMOTE_PATIENCE,
            waiting=lambda err: self.say(
                f"promotion waits for the Docker engine ({err}); trying again for up to "
                f"{containers.PROMOTE_PATIENCE:g} s"
            ),
        )
        if renamed is not None and self.green.release and renamed.id != self.green.release.id:
            await self.hooks.mark_known_good(renamed)
        self.journal(Stage.PROMOTED)
        await self.hooks.observe()
        await self.say(f"promoted: {self.image} is known-good; blue retired")
        await self.hooks.notify(
            "deploy_promoted", f"{self.image} promoted: {self.reason}", self.numbers
        )
