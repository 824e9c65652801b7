"""The playbook runner: one incident's steps in order, exactly once, journaled.

Journal rules (one row per step in the store's ``journal``):

1. Before a step acts, its row is written ``started`` and committed. Every retry writes
   ``started`` again (``attempt`` + 1) before it acts. After the step, the row gets its final
   status: ``succeeded``, ``failed`` (after the last attempt), ``skipped`` (dry run) or
   ``interrupted``. Store calls are synchronous and short: there is no await between the
   committed ``started`` and the step acting.
2. Cancellation (shutdown, or a test's simulated crash) writes nothing: the row stays
   ``started``, exactly as after a SIGKILL, and the next start resumes it.
3. Resume reads the journal. A step with a final row is not run again; a ``failed`` one whose
   ``on_failure`` is ``abort`` fails the incident again without running anything. A step still
   ``started`` was in flight during the crash:

   * idempotent (``rollback``, ``wait_healthy``, ``redis_invalidate``, ``notify``, or
     ``idempotent: true``): it runs again. A ``rollback`` converges on the same restore
     release, so this is the same rollback, never a second one;
   * not idempotent: it is marked ``interrupted``, reported in the audit log and to the
     playbook's notifiers, and **not** run again. The playbook then continues with the next
     step whatever the step's ``on_failure``: whether it took effect is unknown, and stopping
     would leave the bad release running. An operator checks its effect by hand.

4. An incident that has ended is never run again: ``run`` returns its recorded outcome.
   An incident whose playbook changed (other actions, in another order) since it started is
   not resumed: step indexes no longer mean the same steps. It ends ``aborted``, reported.

Retries: tenacity with exponential backoff, ``Step.attempts`` tries in all (idempotent steps
retry by default, others only with an explicit ``retries``), each attempt under the step's
``timeout``. ``wait_healthy`` polls until its own deadline and so does not retry by default.

Dry run: every step is journaled ``skipped`` with detail "dry run" and nothing changes, except
``notify`` steps, which still send, marked ``"dry_run": true``, so operators see what would
have happened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from watchdogd.config.schema import Notifier
from watchdogd.config.steps import OnFailure, Step
from watchdogd.errors import StepFailed, WatchdogError
from watchdogd.playbook.context import HealthCheck, StepContext, runtime_health
from watchdogd.playbook.notify import build_payload, send
from watchdogd.playbook.plan import IncidentOutcome, IncidentPlan, StepResult
from watchdogd.playbook.rollback import wait_healthy_timeout
from watchdogd.playbook.steps import execute
from watchdogd.redact import redact
from watchdogd.store import IncidentRecord, IncidentState, JournalEntry, StepStatus, Store
from watchdogd.targets.base import TargetDriver

if TYPE_CHECKING:
    from tenacity import RetryCallState
    from tenacity.wait import wait_base

__all__ = ["BeforeStep", "PlaybookRunner"]

log = structlog.get_logger("watchdogd.playbook")

# Called once per step that is about to act, after its ``started`` row is committed: the crash
# tests pause here and SIGKILL the daemon mid-step.
BeforeStep = Callable[[int, Step], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]

DRY_RUN = "dry run"


class PlaybookRunner:
    """Runs incidents of one target. The runner does not decide whether to roll back; it
    runs the plan it is handed, once, and resumes it after a restart."""

    def __init__(
        self,
        store: Store,
        driver: TargetDriver,
        *,
        notifiers: Iterable[Notifier] = (),
        health_check: HealthCheck | None = None,
        before_step: BeforeStep | None = None,
        backoff: wait_base | None = None,
        sleep: Sleep = asyncio.sleep,
        health_poll_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._driver = driver
        self._notifiers = {notifier.name: notifier for notifier in notifiers}
        self._health_check = health_check or runtime_health(driver)
        self._before_step = before_step
        self._backoff = backoff  # None: exponential, 1 s to 30 s
        self._sleep = sleep
        self._health_poll_interval = health_poll_interval
        self._clock = clock
        self._active: set[str] = set()

    def use_notifiers(self, notifiers: Iterable[Notifier]) -> None:
        """A reloaded config's notifiers, for every playbook from now on."""
        self._notifiers = {notifier.name: notifier for notifier in notifiers}

    async def run(self, plan: IncidentPlan) -> IncidentOutcome:
        """Open the incident if it is new, else resume it; run what remains of the plan."""
        if plan.incident_id in self._active:
            raise RuntimeError(f"incident {plan.incident_id} is already running")
        self._active.add(plan.incident_id)
        try:
            record = self._store.incident(plan.incident_id)
            if record is None:
                record = self._open(plan)
                return await self._execute(plan, record, resumed=False)
            if record.state is not IncidentState.RUNNING:
                return self._finished_outcome(record)
            return await self._resume(plan, record)
        finally:
            self._active.discard(plan.incident_id)

    async def resume(self, plan: IncidentPlan) -> IncidentOutcome:
        """Resume a stored incident (``Store.open_incidents``) after a restart."""
        if self._store.incident(plan.incident_id) is None:
            raise ValueError(f"no incident {plan.incident_id} in the store")
        return await self.run(plan)

    # --- opening and resuming ----------------------------------------------------------------

    def _open(self, plan: IncidentPlan) -> IncidentRecord:
        record = self._store.create_incident(
            incident_id=plan.incident_id,
            target=plan.target,
            trigger=plan.trigger,
            bad_release=plan.bad_release,
            restore_release=plan.restore_release,
            dry_run=plan.dry_run,
            actions=plan.actions,
        )
        bad = plan.bad_release.label if plan.bad_release else "unknown"
        restore = plan.restore_release.label if plan.restore_release else "none"
        self._audit(
            plan,
            "incident_started",
            f"{'dry run: ' if plan.dry_run else ''}playbook started for {plan.target}: "
            f"{plan.trigger.reason}; {bad} -> {restore}",
            trigger_kind=plan.trigger.kind.value,
            trigger_name=plan.trigger.name,
            numbers=dict(plan.trigger.numbers),
            bad_release=plan.bad_release.id if plan.bad_release else None,
            restore_release=plan.restore_release.id if plan.restore_release else None,
            actions=list(plan.actions),
            dry_run=plan.dry_run,
        )
        log.info("incident_started", target=plan.target, incident=plan.incident_id)
        return record

    async def _resume(self, plan: IncidentPlan, record: IncidentRecord) -> IncidentOutcome:
        if tuple(record.actions) != plan.actions:
            detail = (
                f"playbook changed since the incident started (was {list(record.actions)}, "
                f"now {list(plan.actions)}); not resumed, an operator decides"
            )
            self._audit(plan, "incident_not_resumed", detail)
            self._store.finish_incident(plan.incident_id, IncidentState.ABORTED, detail)
            return IncidentOutcome(
                plan.incident_id,
                IncidentState.ABORTED,
                tuple(StepResult.from_journal(e) for e in self._store.journal_for(record.id)),
                self._clock() - record.started_at,
                resumed=True,
                detail=detail,
            )
        self._audit(plan, "incident_resumed", "resuming the playbook after a restart")
        log.info("incident_resumed", target=plan.target, incident=plan.incident_id)
        return await self._execute(plan, record, resumed=True)

    def _finished_outcome(self, record: IncidentRecord) -> IncidentOutcome:
        end = record.ended_at if record.ended_at is not None else record.started_at
        return IncidentOutcome(
            record.id,
            record.state,
            tuple(StepResult.from_journal(e) for e in self._store.journal_for(record.id)),
            end - record.started_at,
            already_finished=True,
            detail=record.detail,
        )

    # --- the steps ---------------------------------------------------------------------------

    async def _execute(
        self, plan: IncidentPlan, record: IncidentRecord, *, resumed: bool
    ) -> IncidentOutcome:
        journal = {entry.step_index: entry for entry in self._store.journal_for(plan.incident_id)}
        state = IncidentState.SUCCEEDED
        detail = "playbook completed"
        async with aiohttp.ClientSession() as http:
            ctx = StepContext(
                plan=plan,
                driver=self._driver,
                notifiers=self._notifiers,
                health_check=self._health_check,
                http=http,
                started_at=record.started_at,
                clock=self._clock,
                health_poll_interval=self._health_poll_interval,
            )
            for index, step in enumerate(plan.steps):
                result = await self._step(index, step, ctx, journal.get(index))
                ctx.results.append(result)
                if result.status is StepStatus.FAILED and step.on_failure is OnFailure.ABORT:
                    state = IncidentState.FAILED
                    detail = f"step {index + 1} ({step.action}) failed: {result.detail}"
                    break
            self._finish(plan, ctx, state, detail)
            if state is IncidentState.FAILED:
                await self._broadcast("rollback_failed", ctx)
        return IncidentOutcome(
            plan.incident_id, state, tuple(ctx.results), ctx.duration, resumed, detail=detail
        )

    async def _step(
        self, index: int, step: Step, ctx: StepContext, prior: JournalEntry | None
    ) -> StepResult:
        plan = ctx.plan
        if prior is not None and prior.status.final:
            return StepResult.from_journal(prior)  # done before the restart: never again
        if prior is not None:  # journaled started, never ended: in flight at the crash
            if not step.is_idempotent:
                return await self._interrupted(index, step, ctx, prior)
            self._audit(
                plan,
                "step_rerun",
                f"step {index + 1} ({step.action}) was in flight when watchdogd stopped; "
                "it is idempotent, running it again",
                step=index,
                action=step.action,
            )
        if plan.dry_run and step.action != "notify":
            self._store.step_skipped(plan.incident_id, index, step.action, DRY_RUN)
            self._audit(plan, "step_skipped", f"dry run: would run {step.action}", step=index)
            return StepResult(index, step.action, StepStatus.SKIPPED, 0, DRY_RUN)
        return await self._attempts(index, step, ctx)

    async def _interrupted(
        self, index: int, step: Step, ctx: StepContext, prior: JournalEntry
    ) -> StepResult:
        detail = (
            f"in flight when watchdogd stopped (attempt {prior.attempt}); not idempotent, so "
            "not run again: check its effect by hand"
        )
        self._store.step_finished(ctx.plan.incident_id, index, StepStatus.INTERRUPTED, detail)
        self._audit(
            ctx.plan,
            "step_interrupted",
            f"step {index + 1} ({step.action}) {detail}; the playbook continues",
            step=index,
            action=step.action,
            attempt=prior.attempt,
        )
        log.warning("step_interrupted", incident=ctx.plan.incident_id, step=index)
        result = StepResult(index, step.action, StepStatus.INTERRUPTED, prior.attempt, detail)
        await self._broadcast("step_interrupted", ctx, extra=result)
        return result

    async def _attempts(self, index: int, step: Step, ctx: StepContext) -> StepResult:
        plan = ctx.plan
        attempts = step.attempts
        if step.action == "wait_healthy" and step.retries is None:
            attempts = 1  # its deadline is the budget; polling is its retry
        import tenacity  # noqa: PLC0415 - at the first playbook: an idle daemon never needs it

        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=self._backoff or tenacity.wait_exponential(multiplier=1, min=1, max=30),
            retry=tenacity.retry_if_exception_type(StepFailed),
            sleep=self._sleep,
            before_sleep=lambda state: self._retrying(index, step, ctx, state),
            reraise=True,
        )
        journaled = [0]

        async def attempt() -> str:
            last = journaled[0]
            entry = self._store.step_started(
                plan.incident_id, index, step.action, "" if not last else "retrying"
            )
            journaled[0] = entry.attempt
            if self._before_step is not None and last == 0:
                await self._before_step(index, step)
            return await self._attempt(step, ctx)

        try:
            detail = redact(await retrying(attempt))
        except StepFailed as err:
            reason = redact(err.reason)
            self._store.step_finished(plan.incident_id, index, StepStatus.FAILED, reason)
            self._audit(
                plan,
                "step_failed",
                f"step {index + 1} ({step.action}) failed: {reason}",
                step=index,
                action=step.action,
                attempts=journaled[0],
                on_failure=step.on_failure.value,
            )
            log.warning("step_failed", incident=plan.incident_id, step=index, reason=reason)
            return StepResult(index, step.action, StepStatus.FAILED, journaled[0], reason)
        self._store.step_finished(plan.incident_id, index, StepStatus.SUCCEEDED, detail)
        self._audit(
            plan,
            "step_succeeded",
            f"step {index + 1} ({step.action}): {detail}",
            step=index,
            action=step.action,
            attempts=journaled[0],
        )
        log.info("step_succeeded", incident=plan.incident_id, step=index, action=step.action)
        return StepResult(index, step.action, StepStatus.SUCCEEDED, journaled[0], detail)

    async def _attempt(self, step: Step, ctx: StepContext) -> str:
        """One try under the step's timeout; every error leaves as ``StepFailed``."""
        timeout = wait_healthy_timeout(step) if step.action == "wait_healthy" else step.timeout
        try:
            async with asyncio.timeout(timeout) as deadline:
                return await execute(step, ctx)
        except TimeoutError as err:
            if deadline.expired():
                raise StepFailed(step.action, f"timed out after {timeout:g} s") from err
            raise StepFailed(step.action, f"timed out: {err}") from err
        except StepFailed:
            raise
        except WatchdogError as err:
            raise StepFailed(step.action, redact(str(err))) from err
        except Exception as err:
            # A bug in an executor must not kill the incident silently: report it as a failure.
            log.exception("step_crashed", action=step.action)
            raise StepFailed(step.action, redact(f"{type(err).__name__}: {err}")) from err

    def _retrying(self, index: int, step: Step, ctx: StepContext, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        reason = redact(error.reason if isinstance(error, StepFailed) else str(error))
        wait = state.next_action.sleep if state.next_action else 0.0
        self._audit(
            ctx.plan,
            "step_retry",
            f"step {index + 1} ({step.action}) attempt {state.attempt_number} failed: "
            f"{reason}; retrying in {wait:g} s",
            step=index,
            action=step.action,
            attempt=state.attempt_number,
            wait_seconds=wait,
        )

    # --- the end -----------------------------------------------------------------------------

    def _finish(
        self, plan: IncidentPlan, ctx: StepContext, state: IncidentState, detail: str
    ) -> None:
        self._store.finish_incident(plan.incident_id, state, detail)
        self._audit(
            plan,
            "incident_finished",
            f"{'dry run: ' if plan.dry_run else ''}playbook {state.value} after "
            f"{ctx.duration:.1f} s: {detail}",
            state=state.value,
            duration_seconds=round(ctx.duration, 3),
            steps=[result.to_json() for result in ctx.results],
        )
        log.info("incident_finished", incident=plan.incident_id, state=state.value)

    async def _broadcast(
        self, event: str, ctx: StepContext, extra: StepResult | None = None
    ) -> None:
        """Tell every notifier the playbook's ``notify`` steps name; failures are audited
        and otherwise ignored (this is not a step)."""
        names = dict.fromkeys(step.notify.to for step in ctx.plan.steps if step.notify is not None)
        if not names:
            return
        results = ctx.results + ([extra] if extra is not None else [])
        view = dataclasses.replace(ctx, results=results)
        payload = build_payload(event, view)
        for name in names:
            notifier = self._notifiers.get(name)
            if notifier is None:
                continue
            try:
                await send(notifier, payload, ctx.http)
            except StepFailed as err:
                self._audit(ctx.plan, "notify_failed", redact(err.reason), notifier=name)

    def _audit(self, plan: IncidentPlan, kind: str, message: str, **data: Any) -> None:
        self._store.audit(
            kind, redact(message), target=plan.target, data=data, incident_id=plan.incident_id
        )
