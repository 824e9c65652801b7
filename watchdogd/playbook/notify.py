"""Notifications: what a message says, and how it reaches a generic JSON webhook or Apprise.

A notifier's URL picks the transport:

* ``json://host[:port]/path`` POSTs the payload below as JSON to ``http://host[:port]/path``;
  ``jsons://`` does the same over HTTPS. Credentials and a query string carry over.
* Anything else is an Apprise URL (``slack://…``, ``mailto://…``, …). Apprise gets a title
  and a plain-text body rendered from the same payload, in a thread (it blocks).

The JSON payload::

    {
      "event": "rollback_started" | "rollback_finished" | "rollback_failed"
               | "step_interrupted",
      "target": "api",
      "incident": "<uuid>",
      "trigger": {"kind": "gate", "name": "probe:error_rate",
                  "reason": "error rate 12.0% > 1.0% …", "numbers": {…}},
      "bad_release": {"id", "image", "image_ref", "config_hash"} | null,
      "restore_release": {…same…} | null,
      "steps": [{"index", "action", "status", "attempts", "detail"}, …],   # so far
      "duration_seconds": 4.2,                  # since the incident opened
      "dry_run": false,
      "message": "operator text from the step" | null,
      "title": "…", "text": "…"                 # the rendering Apprise gets
    }

``event`` of a ``notify`` step follows from the steps before it: ``rollback_started`` while no
``rollback`` step has run, then ``rollback_finished`` (or ``rollback_failed`` if that step
failed). The runner itself sends ``rollback_failed`` when a playbook aborts and
``step_interrupted`` when a resume finds a step that was in flight at a crash. Release
``spec``s (container env) are never sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from watchdogd.config.schema import JSON_SCHEMES, Notifier
from watchdogd.config.steps import NotifyAction, Step
from watchdogd.errors import StepFailed
from watchdogd.model import public_release
from watchdogd.playbook.context import StepContext, tail
from watchdogd.playbook.plan import StepResult
from watchdogd.redact import describe_error, redact, url_secrets
from watchdogd.store.records import StepStatus

__all__ = ["build_payload", "event_for", "render_text", "run_notify", "send", "send_message"]


def event_for(results: list[StepResult]) -> str:
    rollbacks = [r for r in results if r.action == "rollback"]
    if not rollbacks:
        return "rollback_started"
    if rollbacks[-1].status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
        return "rollback_finished"
    return "rollback_failed"


def build_payload(event: str, ctx: StepContext, message: str | None = None) -> dict[str, Any]:
    plan = ctx.plan
    payload: dict[str, Any] = {
        "event": event,
        "target": plan.target,
        "incident": plan.incident_id,
        "trigger": {
            "kind": plan.trigger.kind.value,
            "name": plan.trigger.name,
            "reason": plan.trigger.reason,
            "numbers": dict(plan.trigger.numbers),
        },
        "bad_release": public_release(plan.bad_release),
        "restore_release": public_release(plan.restore_release),
        "steps": [result.to_json() for result in ctx.results],
        "duration_seconds": round(ctx.duration, 3),
        "dry_run": plan.dry_run,
        "message": message,
    }
    payload["title"], payload["text"] = render_text(payload)
    return payload


_HEADLINES = {
    "rollback_started": "rolling back",
    "rollback_finished": "rolled back",
    "rollback_failed": "ROLLBACK FAILED for",
    "step_interrupted": "step interrupted by a restart while rolling back",
}


def render_text(payload: dict[str, Any]) -> tuple[str, str]:
    """A title and a plain-text body for chat and mail (Apprise)."""
    event = payload["event"]
    prefix = "[dry run] " if payload["dry_run"] else ""
    title = f"{prefix}watchdogd: {_HEADLINES.get(event, event)} {payload['target']}"
    trigger = payload["trigger"]
    lines = [payload["message"]] if payload["message"] else []
    lines.append(f"Trigger: {trigger['kind']} {trigger['name']}: {trigger['reason']}")
    for key, label in (("bad_release", "Bad release"), ("restore_release", "Restoring")):
        release = payload[key]
        if release is not None:
            lines.append(f"{label}: {release['image_ref'] or release['image']} ({release['id']})")
    for step in payload["steps"]:
        detail = f": {step['detail']}" if step["detail"] else ""
        lines.append(f"  {step['index'] + 1}. {step['action']} {step['status']}{detail}")
    lines.append(f"Incident {payload['incident']}, {payload['duration_seconds']:.1f} s so far")
    return title, "\n".join(lines)


async def send(notifier: Notifier, payload: dict[str, Any], http: aiohttp.ClientSession) -> str:
    """Deliver ``payload`` to one notifier; raises ``StepFailed`` naming the notifier (never
    its URL, which may hold a token)."""
    scheme, sep, rest = notifier.url.partition("://")
    try:
        async with asyncio.timeout(notifier.timeout):
            if sep and scheme.lower() in JSON_SCHEMES:
                await _post_json(f"{JSON_SCHEMES[scheme.lower()]}://{rest}", payload, http)
            else:
                await asyncio.to_thread(_apprise_send, notifier.url, payload)
    except TimeoutError as err:
        raise StepFailed(
            "notify", f"{notifier.name}: no answer within {notifier.timeout:g} s"
        ) from err
    except StepFailed as err:
        raise StepFailed("notify", f"{notifier.name}: {err.reason}") from err
    except aiohttp.ClientError as err:
        # Never the exception's text: aiohttp quotes the whole URL, query string and all.
        raise StepFailed("notify", f"{notifier.name}: {describe_error(err)}") from err
    return f"sent {payload['event']} to {notifier.name}"


async def send_message(notifier: Notifier, event: str, target: str, text: str, **extra: Any) -> str:
    """A message outside a playbook (e.g. "target frozen"): ``{"event", "target", "message",
    "title", "text", **extra}`` as JSON, or title and text through Apprise."""
    payload: dict[str, Any] = {"event": event, "target": target, "message": text, **extra}
    payload.setdefault("title", f"watchdogd: {event.replace('_', ' ')} {target}")
    payload.setdefault("text", text)
    async with aiohttp.ClientSession() as http:
        return await send(notifier, payload, http)


async def _post_json(url: str, payload: dict[str, Any], http: aiohttp.ClientSession) -> None:
    async with http.post(url, json=payload) as response:
        # Read the (small) answer in full: the connection stays reusable, and is not reset.
        body = await response.text(errors="replace")
        if response.status >= 300:
            said = redact(tail(body, 5, 300), url_secrets(url))
            raise StepFailed("notify", f"HTTP {response.status}: {said}")


def _apprise_send(url: str, payload: dict[str, Any]) -> None:
    # Imported on first use: Apprise loads all its plugins, which slows every daemon start.
    import apprise  # noqa: PLC0415

    sender = apprise.Apprise()
    if not sender.add(url):
        raise StepFailed("notify", "not a valid Apprise URL")
    if not sender.notify(title=payload["title"], body=payload["text"]):
        raise StepFailed("notify", "Apprise could not deliver the message (see its log)")


async def run_notify(step: Step, ctx: StepContext) -> str:
    spec = step.spec
    assert isinstance(spec, NotifyAction)  # noqa: S101 - guaranteed by the dispatch table
    notifier = ctx.notifiers.get(spec.to)
    if notifier is None:
        raise StepFailed("notify", f"no notifier named {spec.to!r}")
    payload = build_payload(event_for(ctx.results), ctx, spec.message)
    return await send(notifier, payload, ctx.http)
