"""The HTTP probe: one request per interval to the target's own URL, judged on status and body.

Each run reports one :meth:`~watchdogd.sources.base.SampleSink.probe`:

* ``ok=True`` when the status is in ``expect_status`` and ``body_match`` (a regular expression,
  searched, not anchored) finds the first 1 MiB of the body;
* ``ok=False`` for a wrong status, a body that does not match, a timeout, a reset connection, a
  TLS failure or a refused connection: the target's fault;
* ``unknown`` for a failed DNS lookup, an unreachable network or watchdogd's own resource
  limits (EMFILE, ENOBUFS, ...): the path's fault, which a rollback cannot mend (the table is in
  ``outcome``).

Why a refused connection is a failure, not ``unknown``: the probe talks to the target itself,
with no third party in between. When nothing answers on the target's own address, the target is
hard down, which is the worst kind of bad, and a rollback is what it needs.

Latency is measured with a monotonic clock from sending the request to reading the body, after
the shared in-flight limit is taken, so queueing inside watchdogd is never blamed on the target.
A timed-out probe reports the time it waited, so a slow release also shows in latency gates; a
probe that reached nothing reports no latency. While a probe waits, the sink knows it is in
flight (``probe_started``), so a probe waiting past a latency gate's threshold is evidence at
that moment, before its answer or its timeout. Probes overlap (``Poller.overlap``): a slow
answer does not delay the next probe.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from watchdogd.config.schema import HttpCheck
from watchdogd.redact import describe_error, redact
from watchdogd.sources.outcome import path_fault
from watchdogd.sources.poller import Poller
from watchdogd.sources.schedule import StateChangeLog

#: The probe reads at most this much of a body: enough for any health page, and a huge or
#: endless body cannot stall the probe or fill memory.
MAX_BODY = 1024 * 1024


class HttpProbe(Poller[HttpCheck]):
    """One ``type: http`` check. ``run`` probes every ``interval``; ``probe_once`` probes now."""

    overlapping = True

    def _prepare(self) -> None:
        check = self.check
        self._body_match = re.compile(check.body_match) if check.body_match else None
        self._expect = frozenset(check.expect_status)
        self._timeout = aiohttp.ClientTimeout(total=check.timeout)
        self._request_kwargs = _request_kwargs(check)
        self._log = StateChangeLog("probe_failing", "probe_ok", check=check.name)

    async def probe_once(self) -> None:
        """Send one request and report one probe sample (or unknown)."""
        async with self._client.in_flight:
            started = self._clock()
            token = self._sink.probe_started(started)
            try:
                async with self._client.session.request(
                    self.check.method,
                    self.check.url,
                    timeout=self._timeout,
                    ssl=self.check.tls_verify,
                    **self._request_kwargs,
                ) as response:
                    body = await read_capped(response, MAX_BODY)
                    status = response.status
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                self._failed(err, started, token)
                return
            latency = self._clock() - started
        if status not in self._expect:
            expected = ", ".join(str(s) for s in self.check.expect_status)
            self._report(False, latency, f"status {status}, expected {expected}", token)
        elif self._body_match and not self._body_match.search(body.decode(errors="replace")):
            self._report(
                False, latency, f"status {status} but the body does not match body_match", token
            )
        else:
            self._report(True, latency, "", token)

    def _failed(self, err: BaseException, started: float, token: int) -> None:
        unknown = path_fault(err)
        if unknown is not None:
            reason = redact(unknown, self._secrets)
            self._sink.unknown(self._clock(), reason, token)
            self._log.failing(reason)
        elif isinstance(err, aiohttp.ClientConnectorError):
            # Nothing answered on the target's own address: hard down (module docstring).
            self._report(False, None, describe_error(err), token)
        elif isinstance(err, TimeoutError):
            self._report(
                False, self._clock() - started, f"timeout after {self.check.timeout:g}s", token
            )
        else:
            self._report(False, self._clock() - started, describe_error(err), token)

    def _report(self, ok: bool, latency: float | None, detail: str, token: int) -> None:
        detail = redact(detail, self._secrets)
        self._sink.probe(self._clock(), ok, latency, detail, token)
        if ok:
            self._log.ok()
        else:
            self._log.failing(detail)
            self._look_again()


def _request_kwargs(check: HttpCheck) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"headers": dict(check.headers)}
    if check.body is not None:
        kwargs["data"] = check.body.encode()
    elif check.json_body is not None:
        kwargs["json"] = check.json_body
    return kwargs


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body. Reading the body to its end is also what lets aiohttp
    put the connection back into the keep-alive pool; a longer body closes it instead."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
