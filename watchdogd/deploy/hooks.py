"""What a deploy asks of the rest of the daemon (``deployment.Hooks``): the target's
controller for the playbook and the serving release, the store for known-good releases, and
the notifiers and audit log for what happened, with the numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from watchdogd.config.schema import Notifier
from watchdogd.deploy.deployment import Deployment
from watchdogd.deploy.parts import Hooks
from watchdogd.errors import ControlRefused, StepFailed, StoreError
from watchdogd.model import Release, Trigger, TriggerKind
from watchdogd.playbook.notify import send
from watchdogd.store import Store

if TYPE_CHECKING:
    from watchdogd.watch.controller import TargetController

log = structlog.get_logger(__name__)


class Announcer:
    """Deploy events to the audit log and to every notifier, with the numbers."""

    def __init__(
        self,
        store: Store,
        notifiers: Callable[[], list[Notifier]],
        http: Callable[[], aiohttp.ClientSession | None],
    ) -> None:
        self._store = store
        self._notifiers = notifiers
        self._http = http

    def audit(
        self, target: str, event: str, text: str, numbers: dict[str, Any], deploy: str | None
    ) -> None:
        try:
            self._store.audit(event, text, target=target, data=dict(numbers, deploy=deploy))
        except StoreError as err:
            log.error("audit_write_failed", target=target, error=str(err))

    async def announce(
        self,
        target: str,
        event: str,
        text: str,
        numbers: dict[str, Any],
        deployment: Deployment | None,
    ) -> None:
        self.audit(target, event, text, numbers, deployment.id if deployment else None)
        http = self._http()
        if http is None:
            return
        payload = {
            "event": event,
            "target": target,
            "deploy": deployment.id if deployment else None,
            "image": deployment.image if deployment else None,
            "stage": deployment.stage.value if deployment else None,
            "numbers": numbers,
            "message": text,
            "title": f"watchdogd: {event.replace('_', ' ')} {target}",
            "text": text + "".join(f"\n{k}: {v}" for k, v in sorted(numbers.items())),
            "at": time.time(),
        }
        for notifier in self._notifiers():
            try:
                await send(notifier, payload, http)
            except StepFailed as err:
                log.warning("deploy_notify_failed", notifier=notifier.name, error=err.reason)


def daemon_hooks(
    name: str,
    *,
    controllers: Mapping[str, TargetController],
    active: dict[str, Deployment],
    store: Store,
    announcer: Announcer,
) -> Hooks:
    def controller() -> TargetController | None:
        return controllers.get(name)

    async def start_playbook(reason: str, numbers: dict[str, Any]) -> str | None:
        found = controller()
        deployment = active.get(name)
        if found is None or deployment is None or deployment.blue.release is None:
            return "no controller"
        gate = str(numbers.get("gate") or "traffic")
        trigger = Trigger(
            TriggerKind.GATE, gate, reason, {k: v for k, v in numbers.items() if v is not None}
        )
        try:
            await found.request(trigger, to=deployment.blue.release.id)
        except ControlRefused as err:
            return err.message
        return None

    def playbook_running() -> bool:
        found = controller()
        return found is not None and found.playbook_task is not None

    async def observe() -> None:
        found = controller()
        if found is not None:
            await found.observe_release(time.monotonic())

    async def mark_known_good(release: Release) -> None:
        try:
            store.record_release(release)
            store.mark_known_good(name, release.id)
        except StoreError as err:
            log.error("deploy_known_good_failed", target=name, error=str(err))
        found = controller()
        if found is not None:
            found.records.refresh()

    async def notify(event: str, text: str, numbers: dict[str, Any]) -> None:
        await announcer.announce(name, event, text, numbers, active.get(name))

    return Hooks(
        start_playbook=start_playbook,
        playbook_running=playbook_running,
        observe=observe,
        notify=notify,
        mark_known_good=mark_known_good,
    )
