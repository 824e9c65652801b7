"""What one Alertmanager delivery does: de-duplicate, record, and start at most one playbook
per target.

A delivery may carry 10 000 alerts (1 MiB). Its cost must not grow with anything an attacker
with the token controls beyond linear work done in slices: the keys are de-duplicated in
memory, recorded in one transaction off the event loop, matched in slices with a yield to the
loop between them, and each target is asked once per delivery, whatever the number of its
alerts (the rest are summarised in one audit row and one log line). ``/healthz`` keeps
answering meanwhile (benchmarks/bench_webhook.py measures it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from watchdogd.config.schema import AlertRule
from watchdogd.errors import ControlRefused, StoreError
from watchdogd.metrics.registry import Metrics
from watchdogd.model import Trigger, TriggerKind
from watchdogd.store import Store
from watchdogd.store.audit import AlertNews
from watchdogd.watch.controller import TargetController

if TYPE_CHECKING:
    from watchdogd.api.alertmanager import Alert

__all__ = ["ALERT_MEMORY", "AlertIntake", "IntakeUnavailable"]

log = structlog.get_logger(__name__)

#: Alerts handled between two yields to the event loop.
SLICE = 500
#: How long an alert not seen again is remembered for de-duplication. Alertmanager repeats a
#: firing alert every ``repeat_interval`` (4 h by default), which refreshes it.
ALERT_MEMORY = 7 * 86400.0
#: Names listed in a summary row; the count is always complete.
LISTED = 20


class IntakeUnavailable(Exception):
    """The store could not record the delivery: nothing was acted on (answer 503)."""


class AlertIntake:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        controllers: Callable[[], Iterable[TargetController]],
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._controllers = controllers
        self._pruned_at = 0.0

    async def receive(self, alerts: Sequence[Alert]) -> dict[str, Any]:
        unique: dict[tuple[str, str, str], Alert] = {}
        for index, alert in enumerate(alerts):
            self._metrics.alerts_received.labels(alert.status).inc()
            unique.setdefault((*alert.key, alert.status), alert)
            if index % SLICE == SLICE - 1:
                await asyncio.sleep(0)
        # Resolutions first: a delivery holding both halves of one alert holds a finished one.
        keys = sorted(unique, key=lambda key: key[2] != "resolved")
        try:
            # One transaction, in a thread: 10 000 rows cost ~50 ms the loop need not wait.
            news = await asyncio.to_thread(self._store.remember_alerts, keys)
        except StoreError as err:
            raise IntakeUnavailable(f"cannot record the alerts: {err}") from err
        await self._prune()
        pairs = list(zip((unique[key] for key in keys), news, strict=True))
        fresh = [alert for alert, new in pairs if new is not AlertNews.SEEN]
        resolved = [alert for alert in fresh if alert.status == "resolved"]
        late = [alert for alert, new in pairs if new is AlertNews.AFTER_RESOLVED]
        firing = [a for a, new in pairs if new is AlertNews.NEW and a.status == "firing"]
        if resolved:
            self._summarise("alert_resolved", "resolved", resolved)
        if late:
            self._summarise("alert_ignored", "firing after it was resolved; not acted on", late)
        playbooks = await self._start_playbooks(firing)
        return {
            "accepted": len(fresh),
            "duplicates": len(alerts) - len(fresh),
            "playbooks": playbooks,
        }

    async def _start_playbooks(self, firing: list[Alert]) -> list[dict[str, Any]]:
        controllers = list(self._controllers())
        by_target: dict[str, list[Alert]] = {}
        for index, alert in enumerate(firing):
            for controller in controllers:
                if any(matches(rule, alert.labels) for rule in controller.config.alerts):
                    by_target.setdefault(controller.name, []).append(alert)
            if index % SLICE == SLICE - 1:
                await asyncio.sleep(0)
        started: list[dict[str, Any]] = []
        for controller in controllers:
            matched = by_target.get(controller.name)
            if not matched:
                continue
            first = matched[0]
            summary = first.annotations.get("summary", "")
            more = f" (and {len(matched) - 1} more alerts)" if len(matched) > 1 else ""
            trigger = Trigger(
                TriggerKind.ALERT,
                first.name,
                f"alert {first.name} firing {summary}".strip() + more,
                dict(first.labels),
            )
            entry: dict[str, Any] = {"target": controller.name, "alerts": len(matched)}
            try:
                entry["incident"] = await controller.request(trigger)
            except ControlRefused as err:
                entry["refused"] = err.message
            started.append(entry)
        return started

    def _summarise(self, kind: str, what: str, alerts: list[Alert]) -> None:
        """One audit row and one log line for a delivery's alerts of one kind."""
        names = sorted({a.name for a in alerts})
        listed = ", ".join(names[:LISTED]) + (", …" if len(names) > LISTED else "")
        message = (
            f"alert {alerts[0].name} {what}"
            if len(alerts) == 1
            else f"{len(alerts)} alerts {what}: {listed}"
        )
        data: dict[str, Any]
        if len(alerts) == 1:
            data = {"fingerprint": alerts[0].fingerprint, "labels": dict(alerts[0].labels)}
        else:
            listed_alerts = [{"fingerprint": a.fingerprint, "name": a.name} for a in alerts]
            data = {"count": len(alerts), "alerts": listed_alerts[:LISTED]}
        try:
            self._store.audit(kind, message, data=data)
        except StoreError as err:
            log.error("audit_write_failed", error=str(err), message=message)
        log.info(kind, count=len(alerts), alerts=listed)

    async def _prune(self) -> None:
        """Forget alerts not seen for ``ALERT_MEMORY``, at most once an hour."""
        now = time.time()
        if now - self._pruned_at < 3600:
            return
        self._pruned_at = now
        try:
            forgotten = await asyncio.to_thread(self._store.forget_alerts, now - ALERT_MEMORY)
        except StoreError as err:
            log.warning("alerts_prune_failed", error=str(err))
            return
        if forgotten:
            log.info("alerts_pruned", count=forgotten)


def matches(rule: AlertRule, labels: Mapping[str, str]) -> bool:
    """An alert matches a rule when it carries every label pair the rule names."""
    return all(labels.get(key) == value for key, value in rule.match.items())
