"""One target's supervisor: it owns the target's checks, gates and state machine, notices new
releases, and starts the playbook when a gate, an alert or an operator says so.

The decisions themselves are pure (``core``); this class feeds them the clock and the facts,
and carries out what they decide through the store, the driver and the playbook runner.
Nothing here blocks the event loop: driver and store calls that touch disk or Docker are
awaited or run in threads by those modules.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from watchdogd.config.schema import Defaults, Step, TargetConfig
from watchdogd.core.gates import Gate, GateResult, GateSpec, Verdict
from watchdogd.core.guards import GuardPolicy, TriggerKind, refusal
from watchdogd.core.incident import Event, TargetState, TargetStateMachine
from watchdogd.errors import ControlRefused, StoreError, TargetError
from watchdogd.model import Release, Trigger
from watchdogd.playbook.plan import IncidentPlan
from watchdogd.playbook.runner import PlaybookRunner
from watchdogd.store import Store
from watchdogd.store.records import ReleaseState
from watchdogd.targets.base import TargetDriver
from watchdogd.watch.mirror import StateMirror
from watchdogd.watch.recorder import CheckRecorder, CheckView

log = structlog.get_logger(__name__)


class RollbackMetrics(Protocol):
    """Where the controller counts a finished playbook (``metrics.registry.Metrics``)."""

    def rollback_finished(
        self, target: str, trigger: str, result: str, seconds: float, at: float
    ) -> None: ...


# How long a target may have no container before its failures count again (a deploy that
# removed the old container and never started a new one is an outage, not a deploy).
ABSENT_GRACE = 30.0
PROBE_TYPES = frozenset({"http", "auth_flow", "container_health"})
DEFAULT_PLAYBOOK = [
    Step.model_validate({"rollback": {}}),
    Step.model_validate({"wait_healthy": {}}),
]


@dataclass
class GateView:
    gate: str
    breached: bool
    verdict: str
    result: GateResult


@dataclass
class TargetView:
    """The picture of a target that ``/metrics`` and the API read (see metrics.TargetView)."""

    target: str
    state: str
    container_healthy: bool | None
    releases: list[tuple[str, str]]
    checks: list[CheckView] = field(default_factory=list)
    gates: list[GateView] = field(default_factory=list)


def gate_spec(gate: Any) -> GateSpec:
    return GateSpec(
        name=gate.name,
        metric=gate.metric,
        above=gate.above,
        below=gate.below,
        for_=gate.for_,
        min_samples=gate.min_samples,
        confidence=gate.confidence,
        min_errors=gate.min_errors,
        consecutive_failures=gate.consecutive_failures,
        min_slow=gate.min_slow,
        max_staleness=gate.max_staleness,
    )


class TargetController:
    def __init__(
        self,
        config: TargetConfig,
        defaults: Defaults,
        *,
        driver: TargetDriver,
        store: Store,
        runner: PlaybookRunner | None = None,
        notify: Callable[[str, str], Awaitable[None]] | None = None,
        metrics: RollbackMetrics,
        recorders: dict[str, CheckRecorder] | None = None,
        mirror: StateMirror | None = None,
    ) -> None:
        self.name = config.name
        # Where known-good, quarantine and incidents are copied, and incidents claimed (swarm).
        self.mirror = mirror
        self.driver = driver
        self._store = store
        self._runner = runner or PlaybookRunner(store, driver)
        self._notify = notify
        self._metrics = metrics
        self.machine = TargetStateMachine(TargetState.BAKING, since=time.monotonic())
        self.current: Release | None = None
        self._baking_since = time.monotonic()
        self._rolled_back_at: float | None = None
        # Set while the target has no container (a deploy's `rm -f` before its `run`).
        self._absent_since: float | None = None
        # Set while the driver cannot say what runs (the Docker engine is away).
        self._unreachable_since: float | None = None
        # (image, state) of the known-good and quarantined releases for watchdogd_release_info;
        # refreshed when they change, so a scrape reads no database.
        self._catalogue: list[tuple[str, str]] = []
        self._playbook: asyncio.Task[None] | None = None
        self.incident_id: str | None = None
        self._results: list[GateResult] = []
        self._tick_lock = asyncio.Lock()
        self._soon: asyncio.Task[None] | None = None
        #: False once the daemon stops making decisions (shutdown): no evaluation on evidence.
        self.deciding = True
        self._warming = False
        self.apply_config(config, defaults, recorders or {})
        self.refresh_catalogue()

    # --- configuration ---------------------------------------------------------------------

    def apply_config(
        self, config: TargetConfig, defaults: Defaults, keep: dict[str, CheckRecorder]
    ) -> None:
        """Take a (re)loaded config. Recorders in ``keep`` whose check did not change survive
        with their windows; every other check starts empty."""
        self.config = config
        self.defaults = defaults
        span = float(config.setting("window", defaults))
        self.recorders = {}
        for check in config.checks:
            thresholds = config.latency_thresholds(check.name)
            kept = keep.get(check.name)
            if kept is None or kept.thresholds != thresholds:
                # A window counts samples above its gates' thresholds: new ones, new window.
                kept = CheckRecorder(self.name, check.name, check.type, span, thresholds=thresholds)
            kept.on_evidence = self._evaluate_soon
            self.recorders[check.name] = kept
        self.gates = [Gate(gate_spec(g)) for g in config.gates]
        self._gate_checks = [g.check for g in config.gates]
        self.steps = list(config.playbook) or DEFAULT_PLAYBOOK
        self.policy = GuardPolicy(
            cooldown=float(config.setting("cooldown", defaults)),
            max_per_hour=int(config.setting("max_rollbacks_per_hour", defaults)),
        )

    def setting(self, name: str) -> Any:
        return self.config.setting(name, self.defaults)

    # --- the evaluation tick ---------------------------------------------------------------

    async def tick(self, now: float) -> None:
        """Evaluate every gate and act on the verdicts: once a second, and as soon as a sample
        may breach a gate (``_evaluate_soon``); never two evaluations at a time."""
        async with self._tick_lock:
            await self._evaluate(now)

    def _evaluate_soon(self) -> None:
        """A recorder saw a failure, a slow sample or a probe waiting past a threshold: evaluate
        now rather than at the next tick, so that the verdict does not depend on where the
        tick falls (the hard-down span and the slow runs are judged on samples as they come)."""
        if not self.deciding or (self._soon is not None and not self._soon.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a sample fed from outside the daemon's loop (tests): the tick will do
        self._soon = loop.create_task(self._evaluate_now(), name=f"evaluate:{self.name}")

    async def _evaluate_now(self) -> None:
        try:
            await self.tick(time.monotonic())
        except Exception:  # the next tick tries again; the daemon must outlive this
            log.exception("evaluation after new evidence crashed", target=self.name)

    def warming_up(self, now: float) -> bool:
        """A new release's first ``warmup`` seconds: its samples are shown, but only hard down
        (failures spanning 1.5 s) and health states judge them; afterwards they are dropped."""
        warmup = float(self.setting("warmup"))
        return (
            warmup > 0.0
            and self.machine.state is TargetState.BAKING
            and now - self._baking_since < warmup
        )

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
        breached = [r for r in self._results if r.verdict is Verdict.BREACHED]
        state = self.machine.state
        if self._absent_since is not None and now - self._absent_since < ABSENT_GRACE:
            # Between a deploy's `rm -f` and its `run` the failures belong to no release:
            # blaming the old one would roll back (or freeze) in the middle of a deploy.
            return
        if self._unreachable_since is not None:
            return
        # A gate still waiting out its `for:` has a breached condition: no bake passes then.
        pending = any(r.condition is Verdict.BREACHED for r in self._results)
        if state is TargetState.BAKING and not pending and self._has_evidence():
            if now - self._baking_since >= float(self.setting("bake_time")):
                await self._bake_passed(now)
        elif state is TargetState.ROLLED_BACK:
            if breached:
                # The known-good release breaches too: rolling back again would only loop.
                await self._freeze_after(breached[0], now, "the restored release breaches as well")
                return
            if (
                self._rolled_back_at is not None
                and now - self._rolled_back_at >= self.policy.cooldown
            ):
                self._transition(Event.SETTLED, now)
        elif state is TargetState.BREACHED and not breached and self._playbook is None:
            self._transition(Event.BREACH_CLEARED, now)
        if breached and self.machine.state in (TargetState.BAKING, TargetState.HEALTHY):
            # Ask the driver first: an engine that went away since the last poll took the app
            # with it, and a deploy since then is another release (neither is to be blamed).
            before = self.current.id if self.current else None
            await self.observe_release(now)
            after = self.current.id if self.current else None
            absent = self._absent_since is not None and now - self._absent_since < ABSENT_GRACE
            if self._unreachable_since is not None or absent or before != after:
                return
            first = breached[0]
            trigger = Trigger("gate", first.gate, first.reason, _numbers(first))
            await self._start(trigger, TriggerKind.GATE, now)

    def _has_evidence(self) -> bool:
        """A release earns known-good only once every gated check has seen it at least once:
        a bake that passes on no data would bless a release that never answered."""
        if self.current is None:
            return False
        return all(self.recorders[check].samples_since_reset > 0 for check in self._gate_checks)

    async def _bake_passed(self, now: float) -> None:
        assert self.current is not None  # noqa: S101 - checked by the caller
        try:
            self._store.mark_known_good(self.name, self.current.id)
        except StoreError as err:
            log.error("cannot record known-good release", target=self.name, error=str(err))
            return  # try again at the next tick
        self._transition(Event.BAKE_PASSED, now)
        self.refresh_catalogue()
        if self.mirror is not None:
            await self.mirror.known_good(self.current)
        self._audit(
            "known_good",
            f"release {self.current.label} passed its bake time",
            {"release": self.current.id},
        )

    # --- releases --------------------------------------------------------------------------

    async def observe_release(self, now: float) -> None:
        """Ask the driver what runs; a different release than before starts a new bake."""
        if self.machine.state is TargetState.ROLLING_BACK:
            return  # the playbook is changing the target; it sets the release itself
        try:
            release = await self.driver.current()
        except TargetError as err:
            log.debug("cannot inspect target", target=self.name, error=str(err))
            if self._unreachable_since is None:
                # The engine stopping stops the app too: its failures belong to no release,
                # and no rollback could be done. Judge again once the engine answers.
                log.warning("target unreachable, not judged", target=self.name, error=str(err))
                self._unreachable_since = now
                self._reset_windows()
            return
        if self._unreachable_since is not None:
            log.info("target reachable again", target=self.name)
            self._unreachable_since = None
            self._reset_windows()
        if release is None:
            if self._absent_since is None:
                self._absent_since = now
                self._reset_windows()
            return
        self._absent_since = None
        if self.current is not None and release.id == self.current.id:
            return
        first = self.current is None
        self.current = release
        try:
            record, _new = self._store.record_release(release, keep=int(self.setting("history")))
            quarantined = self._store.is_quarantined(self.name, release.image)
        except StoreError as err:
            log.error("cannot record release", target=self.name, error=str(err))
            return
        self._reset_windows()
        self.refresh_catalogue()
        if not first:
            log.info("new release", target=self.name, release=release.label, id=release.id)
            self._audit("new_release", f"now running {release.label}", {"release": release.id})
        if self.machine.can(Event.NEW_RELEASE):
            self._transition(Event.NEW_RELEASE, now)
        self._baking_since = now
        if record.state is ReleaseState.KNOWN_GOOD and self.machine.state is TargetState.BAKING:
            self._transition(Event.BAKE_PASSED, now)  # a known-good release came back
        if quarantined and self.machine.state in (TargetState.BAKING, TargetState.HEALTHY):
            reason = f"release {release.label} was rolled back before and is quarantined"
            await self._start(
                Trigger("quarantine", release.id, reason), TriggerKind.QUARANTINE, now
            )

    def refresh_catalogue(self) -> None:
        """Re-read the known-good and quarantined releases from the store."""
        try:
            known_good = self._store.newest_known_good(self.name)
            quarantined = self._store.quarantined(self.name)
        except StoreError:
            return  # keep the last picture; the store's own metric reports the failure
        catalogue = [(q.image, "quarantined") for q in quarantined]
        if known_good is not None:
            catalogue.insert(0, (known_good.release.label, "known_good"))
        self._catalogue = catalogue

    def _reset_windows(self) -> None:
        for recorder in self.recorders.values():
            recorder.reset()
        for gate in self.gates:
            gate.reset()

    # --- starting a playbook ---------------------------------------------------------------

    async def request(self, trigger: Trigger, kind: TriggerKind, to: str | None = None) -> str:
        """Start the playbook for an alert or an operator; raises ControlRefused with why not."""
        now = time.monotonic()
        stuck = self.machine.state in (TargetState.FROZEN, TargetState.FAILED)
        if stuck and kind is TriggerKind.MANUAL:
            raise ControlRefused(409, f"{self.name} is {self.machine.state}; unfreeze it first")
        # An alert can arrive before the next poll has seen a deploy: read what runs now, so
        # the incident names (and quarantines) the release that is bad, not its predecessor.
        await self.observe_release(now)
        incident = await self._start(trigger, kind, now, to=to)
        if incident is None:
            raise ControlRefused(409, self.last_refusal or "refused")
        return incident

    last_refusal: str | None = None

    async def _start(
        self, trigger: Trigger, kind: TriggerKind, now: float, to: str | None = None
    ) -> str | None:
        wall = time.time()
        reason = refusal(
            self.policy,
            kind,
            now=wall,
            running=self._playbook is not None,
            frozen=self.machine.state in (TargetState.FROZEN, TargetState.FAILED),
            rollback_times=self._rollback_times(wall),
        )
        if reason is None and not self.setting("auto_rollback") and kind is not TriggerKind.MANUAL:
            reason = "auto_rollback is off"
        if reason is None and not self._store.check_writable():
            reason = "the state store cannot be written, so the playbook could not be journaled"
        restore = self._restore_target(to) if reason is None else None
        if reason is None and restore is None:
            reason = "no known-good release to roll back to" if to is None else f"no release {to!r}"
        if reason is None and restore is not None and to is not None:
            reason = self._quarantined_refusal(restore)
        if reason is not None:
            self._refuse(trigger, reason, now)
            return None
        assert restore is not None  # noqa: S101 - reason is None only with a release
        dry_run = bool(self.setting("dry_run"))
        plan = IncidentPlan.new(
            target=self.name,
            trigger=trigger,
            bad_release=self.current,
            restore_release=restore,
            steps=self.steps,
            dry_run=dry_run,
            stop_timeout=float(self.setting("stop_timeout")),
        )
        if self.mirror is not None and not dry_run:
            # Another watchdogd may watch the same target: only the one that claims it acts.
            taken = await self.mirror.claim(plan, manual=kind is TriggerKind.MANUAL)
            if taken is not None:
                self._refuse(trigger, taken, now)
                return None
        self._note_breach(now)
        if dry_run:
            await self._runner.run(plan)
            self._audit(
                "dry_run",
                f"would roll back to {restore.label}: {trigger.reason}",
                {"incident": plan.incident_id},
            )
            return plan.incident_id
        self._transition(Event.ROLLBACK_STARTED, now)
        self.incident_id = plan.incident_id
        self._playbook = asyncio.create_task(
            self._run_playbook(plan, kind), name=f"playbook:{self.name}"
        )
        return plan.incident_id

    def _refuse(self, trigger: Trigger, reason: str, now: float) -> None:
        self.last_refusal = reason
        if trigger.kind != TriggerKind.MANUAL:
            # A gate or an alert says the release is bad; an operator's refused request
            # says nothing about its health, and must not move the target (the API answers 409).
            self._note_breach(now)
        self._audit(
            "rollback_refused",
            f"{trigger.reason}; not rolling back: {reason}",
            {"trigger": trigger.__dict__},
        )
        log.warning("rollback refused", target=self.name, trigger=trigger.name, reason=reason)

    def _quarantined_refusal(self, restore: Release) -> str | None:
        """An operator's ``to`` may not pick a release that was rolled back (docs/security.md):
        restoring it would roll back into a known-bad release, and quarantine the one running."""
        try:
            if not self._store.is_quarantined(self.name, restore.image):
                return None
        except StoreError:
            return "the quarantine cannot be read, so the release might be a known-bad one"
        return (
            f"release {restore.label} is quarantined; clear it first with "
            f"`watchdogd unquarantine {self.name} {restore.image}`"
        )

    def _note_breach(self, now: float) -> None:
        if self.machine.can(Event.BREACH) and self.machine.state is not TargetState.BREACHED:
            self._transition(Event.BREACH, now)

    def _restore_target(self, to: str | None) -> Release | None:
        if to is not None:
            record = self._store.release(self.name, to)
        else:
            exclude = [self.current.id] if self.current is not None else []
            record = self._store.newest_known_good(self.name, excluding=exclude)
        return record.release if record is not None else None

    def _rollback_times(self, wall: float) -> list[float]:
        try:
            return self._store.recent_rollback_times(self.name, since=wall - 3600)
        except StoreError:
            return []

    async def resume(self, plan: IncidentPlan) -> None:
        """Finish an incident a crash interrupted (the runner skips what was done)."""
        now = time.monotonic()
        self.current = plan.bad_release
        self._note_breach(now)
        self._transition(Event.ROLLBACK_STARTED, now)
        self.incident_id = plan.incident_id
        self._playbook = asyncio.create_task(
            self._run_playbook(plan, TriggerKind(plan.trigger.kind), resume=True)
        )

    async def _run_playbook(
        self, plan: IncidentPlan, kind: TriggerKind, resume: bool = False
    ) -> None:
        started = time.monotonic()
        succeeded = False
        try:
            outcome = await (self._runner.resume(plan) if resume else self._runner.run(plan))
            succeeded = outcome.succeeded
        except Exception:  # the daemon must outlive any playbook failure
            log.exception("playbook crashed", target=self.name, incident=plan.incident_id)
        finally:
            self._playbook = None
        if self.mirror is not None:
            detail = "playbook completed" if succeeded else "playbook failed"
            await self.mirror.finished(plan, succeeded=succeeded, detail=detail)
        now = time.monotonic()
        result = "succeeded" if succeeded else "failed"
        self._metrics.rollback_finished(self.name, kind.value, result, now - started, time.time())
        restored = plan.restore_release
        if succeeded and restored is not None:
            self.current = restored
            self._rolled_back_at = now
            self._reset_windows()
            if plan.bad_release is not None and plan.bad_release.image != restored.image:
                self._quarantine(plan.bad_release, plan.incident_id)
            self._transition(Event.ROLLBACK_SUCCEEDED, now)
        else:
            self._transition(Event.ROLLBACK_FAILED, now)
            self._transition(Event.FREEZE, now)
            self._audit(
                "frozen",
                "the playbook failed; no further automatic rollback",
                {"incident": plan.incident_id},
            )
        self.incident_id = None

    def _quarantine(self, release: Release, incident: str) -> None:
        try:
            self._store.quarantine(
                self.name,
                release.image,
                f"rolled back by incident {incident}",
                incident_id=incident,
            )
        except StoreError as err:
            log.error("cannot quarantine release", target=self.name, error=str(err))
        else:
            self.refresh_catalogue()
            self._audit(
                "quarantined",
                f"release {release.label} quarantined: rolled back by incident {incident}; "
                "deploying it again rolls it back at once",
                {"release": release.id, "image": release.image, "incident": incident},
            )

    async def _freeze_after(self, result: GateResult, now: float, why: str) -> None:
        self._transition(Event.FREEZE, now)
        message = f"{why}: {result.reason}; frozen, no further automatic rollback"
        self._audit("frozen", message, _numbers(result))
        log.error("target frozen", target=self.name, reason=message)
        if self._notify is not None:
            await self._notify(self.name, message)

    # --- operator actions ------------------------------------------------------------------

    def freeze(self, reason: str) -> None:
        if self.machine.state is TargetState.ROLLING_BACK:
            raise ControlRefused(409, "a playbook is running; freeze when it ends")
        self._transition(Event.FREEZE, time.monotonic())
        self._audit("frozen", reason, {})

    def unfreeze(self) -> None:
        if not self.machine.can(Event.UNFREEZE):
            raise ControlRefused(409, f"{self.name} is {self.machine.state}, not frozen")
        now = time.monotonic()
        self._transition(Event.UNFREEZE, now)
        self._baking_since = now
        self._reset_windows()
        self._audit("unfrozen", "automatic action resumed; the running release bakes again", {})

    def unquarantine(self, image: str) -> None:
        """Clear a quarantine: the release may be deployed again, and must bake again."""
        try:
            cleared = self._store.unquarantine(self.name, image)
        except StoreError as err:
            raise ControlRefused(503, f"the state store failed: {err}") from err
        if not cleared:
            raise ControlRefused(404, f"{image!r} is not quarantined for {self.name}")
        self.refresh_catalogue()
        self._audit(
            "unquarantined", f"quarantine of {image} cleared by an operator", {"image": image}
        )

    # --- helpers ---------------------------------------------------------------------------

    def _transition(self, event: Event, now: float) -> None:
        before = self.machine.state
        self.machine.handle(event, now)
        if self.machine.state is not before:
            log.info(
                "target state",
                target=self.name,
                state=str(self.machine.state),
                before=str(before),
                on=str(event),
            )

    def _audit(self, kind: str, message: str, data: dict[str, Any]) -> None:
        try:
            self._store.audit(kind, message, target=self.name, data=data)
        except StoreError as err:
            log.error(
                "cannot write the audit log", target=self.name, error=str(err), message=message
            )

    async def wait_healthy(self) -> bool | None:
        """For ``wait_healthy``: the runtime's health and every probe since the restore pass."""
        try:
            healthy = await self.driver.healthy()
        except TargetError:
            return None
        if healthy is False:
            return False
        probes = [r for r in self.recorders.values() if r.check_type in PROBE_TYPES]
        if any(r.samples_since_reset == 0 for r in probes):
            return None
        return all(r.window.stats(time.monotonic()).last_ok for r in probes)

    def container_health(self, now: float) -> bool | None:
        """What the ``container_health`` checks saw last since the release changed (all must be
        healthy); None before their first sample. Exported as ``watchdogd_container_healthy``."""
        seen = [
            recorder.stats(now).last_ok
            for recorder in self.recorders.values()
            if recorder.check_type == "container_health" and recorder.samples_since_reset
        ]
        known = [ok for ok in seen if ok is not None]
        return all(known) if known else None

    @property
    def playbook_task(self) -> asyncio.Task[None] | None:
        return self._playbook

    def view(self, now: float, *, recent: bool = False) -> TargetView:
        """What the API and ``/metrics`` show; ``recent`` lets window stats up to a second old
        stand in (see ``CheckRecorder.view``)."""
        releases = list(self._catalogue)
        if self.current is not None:
            releases.insert(0, (self.current.label, "current"))
        return TargetView(
            target=self.name,
            state=str(self.machine.state),
            container_healthy=self.container_health(now),
            releases=releases,
            checks=[r.view(now, recent=recent) for r in self.recorders.values()],
            gates=[
                GateView(r.gate, r.verdict is Verdict.BREACHED, str(r.verdict), r)
                for r in self._results
            ],
        )


def _numbers(result: GateResult) -> dict[str, float | int | str | None]:
    return {
        "gate": result.gate,
        "value": result.value,
        "threshold": result.threshold,
        "samples": result.samples,
    }
