"""The auth flow probe: a multi-step login run end to end, reported as one probe.

Each run walks ``steps`` in order. A step is one request; it passes when its status is in its
``expect_status``. ``extract: {token: access_token}`` then reads values from the step's JSON
response by dotted path (``data.items.0.id``: keys, and list indexes as numbers), and later
steps use them as ``{token}`` in their URL, headers, body and (recursively) JSON values. Braces
around anything that is not an extracted name are left alone, so JSON text in a body survives.

A run reports one :meth:`~watchdogd.sources.base.SampleSink.probe`: ok, or not ok with the
failing step and the reason (the status got and expected, a missing value, a timeout, an
exception class). Its latency is the whole flow's duration, measured with a monotonic clock.
``timeout`` bounds the whole flow, not each step.

What a failure detail never contains: the config's secrets, extracted values (tokens), cookie
values, request bodies or exception messages (aiohttp puts the URL, with any token in it, into
its messages). Details are built from step names, status codes and error classes, and then
scrubbed of every known secret and extracted value anyway (``redact``).

Choices:

* Redirects are not followed. A protected page that bounces an unauthenticated client to a
  login page with 302 would otherwise pass as the login page's 200. Write ``expect_status:
  [302]`` to accept a redirect.
* Cookies set by one step are sent by the later steps of the same run, and forgotten after the
  run: the shared session keeps no cookies (see ``client``), so each run logs in afresh.
* As for the HTTP probe, a refused connection on the target's own URL is a failure of the
  target (such a run reports no latency); a failed DNS lookup, an unreachable network or
  watchdogd's own resource limits are ``unknown`` (the table is in ``outcome``).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp

from watchdogd.config.schema import AuthFlowCheck, AuthStep
from watchdogd.errors import ProbeFailed
from watchdogd.redact import describe_error, redact
from watchdogd.sources.http import MAX_BODY, read_capped
from watchdogd.sources.outcome import path_fault
from watchdogd.sources.poller import Poller
from watchdogd.sources.schedule import StateChangeLog

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9][A-Za-z0-9_.-]*)\}")
MISSING = object()


class AuthFlowProbe(Poller[AuthFlowCheck]):
    """One ``type: auth_flow`` check. ``run`` runs the flow every ``interval``; ``probe_once``
    runs it now."""

    overlapping = True

    def _prepare(self) -> None:
        check = self.check
        self._log = StateChangeLog("auth_flow_failing", "auth_flow_ok", check=check.name)

    async def probe_once(self) -> None:
        """Run the whole flow once and report one probe sample."""
        values: dict[str, str] = {}
        cookies: dict[str, str] = {}
        step = self.check.steps[0]
        ok, latency, reason = True, None, ""
        # One slot of the in-flight limit for the whole flow: queueing between two steps would
        # otherwise count as the target's latency.
        unknown: str | None = None
        async with self._client.in_flight:
            started = self._clock()
            token = self._sink.probe_started(started)
            try:
                async with asyncio.timeout(self.check.timeout):
                    for step in self.check.steps:
                        await self._run_step(step, values, cookies)
                latency = self._clock() - started
            except ProbeFailed as failed:
                ok, latency, reason = False, self._clock() - started, failed.reason
            except TimeoutError:
                ok, latency = False, self._clock() - started
                reason = f"timeout (the flow took over {self.check.timeout:g}s)"
            except (aiohttp.ClientError, OSError) as err:
                # DNS, an unreachable network, watchdogd's own limits: the path's fault.
                unknown = path_fault(err)
                ok, reason = False, describe_error(err)
                if not isinstance(err, aiohttp.ClientConnectorError):
                    latency = self._clock() - started
        if unknown is not None:
            reason = redact(f"step {step.name!r}: {unknown}", self._secrets)
            self._sink.unknown(self._clock(), reason, token)
            self._log.failing(reason)
            return
        detail = ""
        if not ok:
            hidden = self._secrets | set(values.values()) | set(cookies.values())
            detail = redact(f"step {step.name!r}: {reason}", hidden)
        self._sink.probe(self._clock(), ok, latency, detail, token)
        if ok:
            self._log.ok()
        else:
            self._log.failing(detail)
            self._look_again()

    async def _run_step(
        self, step: AuthStep, values: dict[str, str], cookies: dict[str, str]
    ) -> None:
        kwargs: dict[str, Any] = {
            "headers": {name: substitute(v, values) for name, v in step.headers.items()},
            "allow_redirects": False,
            "ssl": self.check.tls_verify,
        }
        if step.body is not None:
            kwargs["data"] = substitute(step.body, values).encode()
        elif step.json_body is not None:
            kwargs["json"] = substitute_json(step.json_body, values)
        if cookies:
            kwargs["cookies"] = dict(cookies)
        url = substitute(step.url, values)
        async with self._client.session.request(step.method, url, **kwargs) as response:
            body = await read_capped(response, MAX_BODY)
            status = response.status
            for name, morsel in response.cookies.items():
                cookies[name] = morsel.value
        if status not in step.expect_status:
            expected = ", ".join(str(s) for s in step.expect_status)
            raise ProbeFailed(f"status {status}, expected {expected}")
        if step.extract:
            values.update(extract_values(body, step.extract))


def substitute(text: str, values: dict[str, str]) -> str:
    """``text`` with each ``{name}`` of an extracted value replaced; other braces stay."""
    if "{" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def substitute_json(document: Any, values: dict[str, str]) -> Any:
    """:func:`substitute` applied to every string inside a JSON-like value."""
    if isinstance(document, str):
        return substitute(document, values)
    if isinstance(document, dict):
        return {key: substitute_json(item, values) for key, item in document.items()}
    if isinstance(document, list):
        return [substitute_json(item, values) for item in document]
    return document


def extract_values(body: bytes, extract: dict[str, str]) -> dict[str, str]:
    """The values named in ``extract`` from a JSON body; raises :class:`ProbeFailed` when the
    body is not JSON or a path leads nowhere. Non-string values are kept as their JSON text."""
    try:
        document = json.loads(body)
    except ValueError:
        raise ProbeFailed("the response is not JSON, so nothing could be extracted") from None
    found: dict[str, str] = {}
    for name, path in extract.items():
        value = lookup(document, path)
        if value is MISSING or value is None:
            raise ProbeFailed(f"extract {name!r}: no value at {path!r} in the response")
        found[name] = value if isinstance(value, str) else json.dumps(value)
    return found


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``a.b.0.c``), or a sentinel when there is none."""
    current = document
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(current) <= index < len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current
