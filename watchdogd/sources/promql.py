"""The PromQL source: an instant query against a Prometheus server, reported as one value.

Every ``interval`` it sends ``GET {url}/api/v1/query?query=...`` and reports:

* ``value(v)`` when the result is a scalar or a vector of exactly one sample with a finite
  value;
* ``unknown(reason)`` for everything else: Prometheus unreachable or slow, a non-JSON answer,
  a query error (``status: error``, e.g. a syntax error), an empty vector (the series does not
  exist, or an ``expr > x`` filter removed it), more than one series (the query is ambiguous:
  use ``sum``/``max``), a range or string result, and NaN or infinite values (``0/0`` on an
  idle service).

All of these are ``unknown`` because Prometheus is a third party between us and the target:
when it is down or the query is wrong, the target may be perfectly fine, and gates treat
``unknown`` as no data, never as bad.
"""

from __future__ import annotations

import json
import math
from typing import Any

import aiohttp

from watchdogd.config.schema import PromqlCheck
from watchdogd.errors import SourceUnavailable
from watchdogd.redact import describe_error, redact
from watchdogd.sources.http import read_capped
from watchdogd.sources.poller import Poller
from watchdogd.sources.schedule import StateChangeLog

#: An instant query answering one number is tiny; a huge answer is a wrong query.
MAX_RESPONSE = 4 * 1024 * 1024


class PromqlSource(Poller[PromqlCheck]):
    """One ``type: promql`` check. ``run`` queries every ``interval``; ``probe_once`` now."""

    def _prepare(self) -> None:
        check = self.check
        self._timeout = aiohttp.ClientTimeout(total=check.timeout)
        self._endpoint = check.url.rstrip("/") + "/api/v1/query"
        self._log = StateChangeLog("promql_unavailable", "promql_back", check=check.name)

    async def probe_once(self) -> None:
        """Query once and report the value, or unknown with the reason."""
        try:
            value = await self.query()
        except SourceUnavailable as err:
            reason = redact(str(err), self._secrets)
            self._sink.unknown(self._clock(), reason)
            self._log.failing(reason)
            return
        self._sink.value(self._clock(), value)
        self._log.ok()

    async def query(self) -> float:
        """The query's single value; raises :class:`SourceUnavailable` with the reason."""
        # Passing the timeout to Prometheus too makes it stop evaluating a query we gave up on.
        params = {"query": self.check.query, "timeout": f"{self.check.timeout:g}"}  # seconds
        async with self._client.in_flight:
            try:
                async with self._client.session.get(
                    self._endpoint, params=params, timeout=self._timeout
                ) as response:
                    body = await read_capped(response, MAX_RESPONSE)
                    status = response.status
            except (TimeoutError, aiohttp.ClientError) as err:
                raise SourceUnavailable(f"prometheus unreachable: {describe_error(err)}") from err
        return parse_query_response(status, body)


def parse_query_response(status: int, body: bytes) -> float:
    """The single value of an ``/api/v1/query`` answer, or :class:`SourceUnavailable`."""
    try:
        document: Any = json.loads(body)
    except ValueError:
        raise SourceUnavailable(f"prometheus answered status {status} without JSON") from None
    if not isinstance(document, dict):
        raise SourceUnavailable("prometheus answered JSON that is not an object")
    if document.get("status") != "success":
        kind = document.get("errorType", f"status {status}")
        raise SourceUnavailable(f"query failed: {kind}: {document.get('error', '')}".rstrip(": "))
    data = document.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _finite(result)
    if kind != "vector":
        raise SourceUnavailable(f"query returned a {kind}, expected a scalar or one sample")
    if not result:
        raise SourceUnavailable("query returned no series")
    if len(result) > 1:
        raise SourceUnavailable(f"query returned {len(result)} series, expected one")
    return _finite(result[0].get("value"))


def _finite(pair: Any) -> float:
    """The number of a ``[timestamp, "value"]`` pair, if it is one and finite."""
    try:
        value = float(pair[1])
    except (TypeError, ValueError, IndexError, KeyError):
        raise SourceUnavailable("query returned a malformed sample") from None
    if not math.isfinite(value):
        raise SourceUnavailable(f"query returned {value}, not a finite number")
    return value
