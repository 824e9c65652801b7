"""The one HTTP client every probe, flow, scrape and PromQL query shares.

Why aiohttp and not httpx: probes must stay cheap as they scale. Measured on a 2-core machine
(see /work/shared/REFERENCE.md), keep-alive against nginx on loopback at 100 concurrent
requests, httpx 0.28.1 costs 13.8 ms of CPU a request (its pool grows more expensive with
concurrency, encode/httpx#3215) against 0.10 ms for aiohttp, and 0.66 ms for a
blackbox_exporter probe. Our benchmark target is half of blackbox_exporter's cost, flat from 1
to 1000 concurrent checks, which only aiohttp meets.

Why one session: a ``ClientSession`` owns the connection pool, so one session means keep-alive
connections are reused across every check of the same host. The verifying TLS context is the
one aiohttp builds at import (``ssl=True``): a context of our own would load the system CA
bundle a second time, about 20 ms of CPU and 0.85 MB that stay resident. The daemon creates one
:class:`ProbeClient` at start-up, passes it to every source and closes it at shutdown.

Two limits, on purpose:

* ``TCPConnector(limit=...)`` caps the sockets in use at once, a backstop behind the semaphore.
  Idle keep-alive sockets (one per target host) are not counted and close after
  ``KEEPALIVE_SECONDS``: a daemon with a thousand targets needs ``LimitNOFILE`` above 1024.
* an ``asyncio.Semaphore`` caps requests in flight. A source takes it *before* it starts its
  clock, so time spent queueing behind other checks is never blamed on the target's latency
  and never eats into the target's timeout.

Cookies are not shared: the session uses a ``DummyCookieJar``, so one check's login cannot
leak into another check's requests. An auth flow carries its own cookies per run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

#: Sockets in use at once, across all hosts.
DEFAULT_MAX_CONNECTIONS = 1000
#: Requests in flight at once. A probe is ~0.1 ms of our CPU, so 256 in flight is far more than
#: one core can start per millisecond; beyond it, requests queue instead of opening sockets.
DEFAULT_MAX_IN_FLIGHT = 256
#: Idle keep-alive connections live this long: longer than the slowest default interval
#: (PromQL, 15 s), so a connection survives between two runs of the same check.
KEEPALIVE_SECONDS = 60.0


@dataclass(frozen=True)
class ProbeClient:
    """The shared HTTP session plus the in-flight limit. Build it with :func:`open_probe_client`
    (or :meth:`create` inside a running event loop) and close it with :meth:`close`."""

    session: aiohttp.ClientSession
    in_flight: asyncio.Semaphore

    @classmethod
    def create(
        cls,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> ProbeClient:
        """Build the client; call it from inside the running event loop (aiohttp binds to it)."""
        connector = aiohttp.TCPConnector(
            limit=max_connections,
            limit_per_host=0,  # one busy host may use the whole pool; the semaphore bounds it
            keepalive_timeout=KEEPALIVE_SECONDS,
            # aiohttp's cached verifying context; ``tls_verify: false`` checks pass
            # ``ssl=False`` per request, which aiohttp serves from its unverifying one.
            ssl=True,
            ttl_dns_cache=10,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            # Loopback and service traffic must not go through a proxy from the environment.
            trust_env=False,
            raise_for_status=False,
        )
        return cls(session=session, in_flight=asyncio.Semaphore(max_in_flight))

    async def close(self) -> None:
        await self.session.close()


@contextlib.asynccontextmanager
async def open_probe_client(
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> AsyncIterator[ProbeClient]:
    """``async with open_probe_client() as client:`` for the daemon, tests and the benchmark."""
    client = ProbeClient.create(max_connections=max_connections, max_in_flight=max_in_flight)
    try:
        yield client
    finally:
        await client.close()
