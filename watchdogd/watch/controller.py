"""One target's controller: it owns the target's checks and gates, notices new releases, and
carries out what ``core.policy`` decides (from plain facts and ``now``) through the store, the
driver and the playbook runner. It reads no clock of its own: ``clock`` (monotonic) and
``wall`` (Unix time) are injected, so its tests drive it with a fake one. Nothing here blocks
the event loop: driver and store calls are awaited or run in threads by those modules.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from watchdogd.config.schema import Defaults, TargetConfig
from watchdogd.config.settings import TargetSettings, resolve
from watchdogd.core import policy
from watchdogd.core.gates import Gate, GateResult
from watchdogd.core.guards import GuardPolicy
from watchdogd.core.incident import Event, TargetState, TargetStateMachine
from watchdogd.errors import ControlRefused, TargetError
from watchdogd.model import Release, Trigger, TriggerKind
from watchdogd.playbook.plan import IncidentPlan
from watchdogd.playbook.runner import PlaybookRunner
from watchdogd.store import Store
from watchdogd.store.records import ReleaseState
from watchdogd.targets.base import TargetDriver
from watchdogd.watch.evidence import RestoreEvidence, seen_by_every_gate
from watchdogd.watch.mirror import StateMirror
from watchdogd.watch.presence import TargetPresence
from watchdogd.watch.prompt import EvaluationPrompt
from watchdogd.watch.recorder import CheckRecorder, recorders_for
from watchdogd.watch.records import TargetRecords
from watchdogd.watch.running import RunningRelease
from watchdogd.watch.seams import Clock, Notify, RollbackMetrics, tell_nobody
from watchdogd.watch.views import TargetView, gate_numbers, target_view

log = structlog.get_logger(__name__)


class TargetController:
    def __init__(
        self,
        config: TargetConfig,
        defaults: Defaults,
        *,
        driver: TargetDriver,
        store: Store,
        metrics: RollbackMetrics,
        evidence: RestoreEvidence | None = None,
        runner: PlaybookRunner | None = None,
        notify: Notify | None = None,
        recorders: dict[str, CheckRecorder] | None = None,
        mirror: StateMirror | None = None,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        self.name = config.name
        # Where known-good, quarantine and incidents are copied, and incidents claimed (swarm).
        self.mirror = mirror
        self.driver = driver
        self.evidence = evidence or RestoreEvidence(driver)
        self.runner = runner or PlaybookRunner(
            store, driver, health_check=self.evidence, clock=wall
        )
        self._store = store
        self.records = TargetRecords(config.name, store)
        self._notify = notify or tell_nobody
        self._metrics = metrics
        self._clock = clock
        self._wall = wall
        now = clock()
        self.machine = TargetStateMachine(TargetState.BAKING, since=now)
        self.running = RunningRelease()  # the one owner of what the target runs
        self._baking_since = now
        self._rolled_back_at: float | None = None
        self.presence = TargetPresence(config.name)  # engine away, or no container
        self._playbook: asyncio.Task[None] | None = None
        self.incident_id: str | None = None
        self.last_refusal: str | None = None
        self._results: list[GateResult] = []
        self._tick_lock = asyncio.Lock()
        self.prompt = EvaluationPrompt(self.tick, clock, config.name)  # recorders call it
        self._warming = False
        self.apply_config(config, defaults, recorders or {})
        self.records.refresh()

    def apply_config(
        self, config: TargetConfig, defaults: Defaults, keep: dict[str, CheckRecorder]
    ) -> None:
        """Take a (re)loaded config. Recorders in ``keep`` whose check did not change survive
        with their windows; every other check starts empty."""
        self.config = config
        self.settings: TargetSettings = resolve(config, defaults)
        self.recorders = recorders_for(config, self.settings.window, keep, self.prompt)
        self.gates = [Gate(g.spec()) for g in config.gates]
        self._gate_checks = [g.check for g in config.gates]
        self.evidence.use(self.recorders, self._gate_checks)
        self.steps = list(self.settings.playbook)
        self.guards = GuardPolicy(
            cooldown=self.settings.cooldown, max_per_hour=self.settings.max_rollbacks_per_hour
        )
        self._timing = policy.Timing(
            bake_time=self.settings.bake_time, cooldown=self.settings.cooldown
        )

    # --- the evaluation tick ---------------------------------------------------------------

    async def tick(self, now: float) -> None:
        """Evaluate every gate and act on the policy's decision: once a second, and as soon as
        a sample may breach a gate (``watch.prompt``); never two evaluations at a time."""
        async with self._tick_lock:
            await self._evaluate(now)

    def warming_up(self, now: float) -> bool:
        return policy.warming_up(self.machine.state, now, self._baking_since, self.settings.warmup)

    async def _evaluate(self, now: float) -> None:
        warming_up = self.warming_up(now)
        if self._warming and not warming_up and self.machine.state is TargetState.BAKING:
            # The warm-up's samples were shown, not judged: they must not count afterwards.
            self._reset_windows()
        self._warming = warming_up
        self._results = [
            gate.evaluate(
                self.recorders[check].stats(now),
                now,
                source_up=self.recorders[check].source_up,
                warming_up=warming_up,
            )
            for gate, check in zip(self.gates, self._gate_checks, strict=True)
        ]
        decision = policy.on_tick(
            policy.TickFacts(
                now=now,
                state=self.machine.state,
                results=self._results,
                has_evidence=self.current is not None
                and seen_by_every_gate(self.recorders, self._gate_checks),
                baking_since=self._baking_since,
                rolled_back_at=self._rolled_back_at,
                absent_since=self.presence.absent_since,
                playbook_running=self._playbook is not None,
                not_judged=self.presence.holds(now),
            ),
            self._timing,
        )
        if decision.freeze is not None:
            await self._freeze_after(decision.freeze, now, "the restored release breaches as well")
            return
        if decision.event is Event.BAKE_PASSED:
            if not await self._bake_passed(now):
                return  # the store failed: try again at the next tick
        elif decision.event is not None:
            self._transition(decision.event, now)
        if decision.start is not None:
            # Ask the driver first: an engine that went away since the last poll took the app
            # with it, and a deploy since then is another release (neither is to be blamed).
            before = self.current
            await self.observe_release(now)
            moved = self.current != before
            if moved or self.presence.blames_nobody(now, self._timing.absent_grace):
                return
            first = decision.start
            trigger = Trigger(TriggerKind.GATE, first.gate, first.reason, gate_numbers(first))
            await self._start(trigger, now)

    async def _bake_passed(self, now: float) -> bool:
        assert self.current is not None  # noqa: S101 - the policy asks for evidence first
        if not self.records.mark_known_good(self.current):
            return False
        self._transition(Event.BAKE_PASSED, now)
        if self.mirror is not None:
            await self.mirror.known_good(self.current)
        return True

    # --- releases --------------------------------------------------------------------------

    async def observe_release(self, now: float) -> None:
        """Ask the driver what runs; a different release than before starts a new bake."""
        if self.machine.state is TargetState.ROLLING_BACK:
            self.presence.record_starts(None)
            return  # the playbook is changing the target; it sets the release itself
        try:
            release = await self.driver.current()
        except TargetError as err:
            if self.presence.cannot_see(now, str(err)):
                self._reset_windows()
            return
        if self.presence.sees(self._clock()):  # after the call: it may have waited
            self._reset_windows()
        if release is None:
            if self.presence.nothing_runs(now):
                self._reset_windows()
            return
        self.presence.something_runs()
        first = self.current is None
        if not self.running.seen(release):
            self._same_release_looked_at(release)
            return
        self.presence.record_starts(self.driver.starts())
        recorded = self.records.record(release, self.settings.history)
        if recorded is None:
            return
        record, quarantined = recorded
        self._reset_windows()
        self.records.refresh()
        if not first:
            log.info("target_new_release", target=self.name, release=release.label, id=release.id)
            self.records.audit(
                "new_release", f"now running {release.label}", {"release": release.id}
            )
        decision = policy.on_new_release(
            self.machine.state,
            known_good=record.state is ReleaseState.KNOWN_GOOD,
            quarantined=quarantined,
        )
        for event in decision.events:
            self._transition(event, now)
        self._baking_since = now
        if decision.quarantine_rollback:
            reason = f"release {release.label} was rolled back before and is quarantined"
            await self._start(Trigger(TriggerKind.QUARANTINE, release.id, reason), now)

    def _same_release_looked_at(self, release: Release) -> None:
        """The release seen before runs still: did somebody stop, pause or start it again?
        Either way the windows start afresh (the evidence before belongs to another
        situation)."""
        starts = self.driver.starts()
        if self.presence.held_by_somebody(starts):
            self._reset_windows()
            self.records.audit(
                "held_by_somebody",
                f"{release.label} was stopped or paused by somebody: it is not judged "
                "until it runs again",
                {"release": release.id},
            )
        if self.presence.started_again(self._clock(), starts):
            self._reset_windows()
            grace = self.presence.restart_grace
            self.records.audit(
                "started_again",
                f"{release.label} was started again: its failures count after {grace:g} s",
                {"release": release.id, "grace_seconds": grace},
            )

    def _reset_windows(self) -> None:
        for recorder in self.recorders.values():
            recorder.reset()
        for gate in self.gates:
            gate.reset()

    # --- starting a playbook ---------------------------------------------------------------

    async def request(self, trigger: Trigger, to: str | None = None) -> str:
        """Start the playbook for an alert or an operator; raises ControlRefused with why not."""
        if self.machine.state in policy.STUCK and trigger.kind is TriggerKind.MANUAL:
            raise ControlRefused(409, f"{self.name} is {self.machine.state}; unfreeze it first")
        now = self._clock()
        if to is None or self.records.restore_target(self.current, to) is not None:
            # Read what runs (an alert may beat the poll to a deploy); a `to` naming no release
            # is refused below without it, so that a refused request changes nothing.
            await self.observe_release(now)
        incident = await self._start(trigger, now, to=to)
        if incident is None:
            raise ControlRefused(409, self.last_refusal or "refused")
        return incident

    async def _start(self, trigger: Trigger, now: float, to: str | None = None) -> str | None:
        wall, kind = self._wall(), trigger.kind
        restore = self.records.restore_target(self.current, to)
        facts = policy.StartFacts(
            kind=kind,
            now=wall,
            state=self.machine.state,
            playbook_running=self._playbook is not None,
            rollback_times=self.records.rollback_times(wall),
            auto_rollback=self.settings.auto_rollback,
            store_writable=self._store.check_writable(),
            has_restore_target=restore is not None,
            to=to,
            restore_refusal=self.records.restore_refusal(restore) if to is not None else None,
            held=bool(self.presence.held),
        )
        reason = policy.refusal(facts, self.guards)
        if reason is not None or restore is None:
            self._refuse(trigger, reason or "refused", now)
            return None
        dry_run = self.settings.dry_run
        plan = IncidentPlan.new(
            target=self.name,
            trigger=trigger,
            bad_release=self.current,
            restore_release=restore,
            steps=self.steps,
            dry_run=dry_run,
            stop_timeout=self.settings.stop_timeout,
        )
        if self.mirror is not None and not dry_run:
            # Another watchdogd may watch the same target: only the one that claims it acts.
            taken = await self.mirror.claim(plan, manual=kind is TriggerKind.MANUAL)
            if taken is not None:
                self._refuse(trigger, taken, now)
                return None
        for event in policy.on_start(self.machine.state, dry_run=dry_run):
            self._transition(event, now)
        if dry_run:
            await self.runner.run(plan)
            self.records.audit(
                "dry_run",
                f"would roll back to {restore.label}: {trigger.reason}",
                {"incident": plan.incident_id},
            )
            return plan.incident_id
        self._launch(plan)
        return plan.incident_id

    def _launch(self, plan: IncidentPlan, *, resume: bool = False) -> None:
        self.incident_id = plan.incident_id
        self._playbook = asyncio.create_task(
            self._run_playbook(plan, resume=resume), name=f"playbook:{self.name}"
        )

    def _refuse(self, trigger: Trigger, reason: str, now: float) -> None:
        self.last_refusal = reason
        for event in policy.on_refusal(self.machine.state, trigger.kind):
            self._transition(event, now)
        self.records.refused(trigger, reason)

    async def resume(self, plan: IncidentPlan) -> None:
        """Finish an incident a crash interrupted (the runner skips what was done)."""
        now = self._clock()
        self.running.playbook_says(plan.bad_release)
        for event in policy.on_start(self.machine.state, dry_run=False):
            self._transition(event, now)
        self._launch(plan, resume=True)

    async def _run_playbook(self, plan: IncidentPlan, resume: bool = False) -> None:
        started = self._clock()
        succeeded = False
        try:
            outcome = await (self.runner.resume(plan) if resume else self.runner.run(plan))
            succeeded = outcome.succeeded
        except Exception:  # the daemon must outlive any playbook failure
            log.exception("playbook_crashed", target=self.name, incident=plan.incident_id)
        finally:
            self._playbook = None
        if self.mirror is not None:
            detail = "playbook completed" if succeeded else "playbook failed"
            await self.mirror.finished(plan, succeeded=succeeded, detail=detail)
        now = self._clock()
        result = "succeeded" if succeeded else "failed"
        kind = plan.trigger.kind.value
        self._metrics.rollback_finished(self.name, kind, result, now - started, self._wall())
        bad, restored = plan.bad_release, plan.restore_release
        end = policy.on_playbook_end(
            succeeded=succeeded,
            bad_image=bad.image if bad is not None else None,
            restored_image=restored.image if restored is not None else None,
        )
        if end.reset_windows:
            self.running.playbook_says(restored)
            self._rolled_back_at = now
            self._reset_windows()
        if end.quarantine_bad and bad is not None:
            self.records.quarantine(bad, plan.incident_id)
        for event in end.events:
            self._transition(event, now)
        if end.frozen:
            message = f"incident {plan.incident_id} failed; frozen until an operator unfreezes"
            self.records.frozen(message, {"incident": plan.incident_id})
            await self._notify(self.name, message)
        self.incident_id = None

    async def _freeze_after(self, result: GateResult, now: float, why: str) -> None:
        self._transition(Event.FREEZE, now)
        message = f"{why}: {result.reason}; frozen, no further automatic rollback"
        self.records.frozen(message, gate_numbers(result))
        await self._notify(self.name, message)

    # --- operator actions ------------------------------------------------------------------

    def freeze(self, reason: str) -> None:
        if self.machine.state is TargetState.ROLLING_BACK:
            raise ControlRefused(409, "a playbook is running; freeze when it ends")
        self._transition(Event.FREEZE, self._clock())
        self.records.audit("frozen", reason, {})

    def unfreeze(self) -> None:
        if not self.machine.can(Event.UNFREEZE):
            raise ControlRefused(409, f"{self.name} is {self.machine.state}, not frozen")
        now = self._clock()
        self._transition(Event.UNFREEZE, now)
        self._baking_since = now
        self._reset_windows()
        self.records.audit(
            "unfrozen", "automatic action resumed; the running release bakes again", {}
        )

    def _transition(self, event: Event, now: float) -> None:
        before = self.machine.state
        self.machine.handle(event, now)
        if (state := self.machine.state) is not before:
            log.info("target_state", target=self.name, state=str(state), before=before, on=event)

    @property
    def playbook_task(self) -> asyncio.Task[None] | None:
        return self._playbook

    @property
    def current(self) -> Release | None:
        return self.running.release

    def view(self, now: float, *, recent: bool = False) -> TargetView:
        """What the API and ``/metrics`` show (``recent``: see ``CheckRecorder.view``)."""
        return target_view(
            self.name,
            str(self.machine.state),
            current=self.current,
            catalogue=self.records.catalogue,
            recorders=self.recorders,
            results=self._results,
            now=now,
            recent=recent,
        )
