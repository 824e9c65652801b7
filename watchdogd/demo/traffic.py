"""The demo's users: a steady stream of ``GET /api`` requests, which the app's ``/metrics``
counts and watchdogd's scrape check turns into an error rate and a latency p95.

The load is open loop (a new request every ``1 / rate`` seconds whether or not the previous
ones answered), as real users are: a slow release piles requests up instead of slowing the
load down and hiding its own latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass

import aiohttp

RECENT = 5.0  # seconds of outcomes the live view summarises
MAX_IN_FLIGHT = 200


@dataclass(frozen=True)
class Outcome:
    at: float  # monotonic, when the answer (or the failure) came
    status: int | None  # None: no answer (refused, reset, timed out)
    latency: float


@dataclass(frozen=True)
class TrafficSummary:
    """What users saw over an interval."""

    requests: int
    errors: int  # 5xx answers
    unanswered: int
    p95: float | None

    @property
    def failed(self) -> int:
        return self.errors + self.unanswered

    def describe(self) -> str:
        if not self.requests:
            return "no requests answered yet"
        p95 = ""
        if self.p95 is not None:
            p95 = f", p95 {self.p95 * 1000:.0f} ms" if self.p95 < 1 else f", p95 {self.p95:.1f} s"
        bad = self.failed / self.requests * 100
        return f"{self.requests} requests, {bad:.0f} % failed{p95}"


class Traffic:
    def __init__(self, url: str, rate: float = 20.0, timeout: float = 10.0) -> None:
        self.url = url
        self.rate = rate
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._outcomes: deque[Outcome] = deque()
        self._all: list[Outcome] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Send requests until cancelled; then cancel the ones still waiting."""
        connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            try:
                next_at = time.monotonic()
                while True:
                    if len(self._in_flight) < MAX_IN_FLIGHT:
                        task = asyncio.create_task(self._one(session))
                        self._in_flight.add(task)  # a strong reference until it is done
                        task.add_done_callback(self._in_flight.discard)
                    next_at += 1.0 / self.rate
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            finally:
                for task in list(self._in_flight):
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _one(self, session: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        status: int | None = None
        try:
            async with session.get(self.url, timeout=self._timeout) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = None
        now = time.monotonic()
        outcome = Outcome(now, status, now - started)
        self._outcomes.append(outcome)
        self._all.append(outcome)
        while self._outcomes and self._outcomes[0].at < now - RECENT:
            self._outcomes.popleft()

    def recent(self) -> TrafficSummary:
        """The last few seconds, for the live view."""
        cutoff = time.monotonic() - RECENT
        return summarize([o for o in self._outcomes if o.at >= cutoff])

    def between(self, start: float, end: float) -> TrafficSummary:
        """Everything answered between two monotonic times, for the summary."""
        return summarize([o for o in self._all if start <= o.at <= end])


def summarize(outcomes: list[Outcome]) -> TrafficSummary:
    errors = sum(1 for o in outcomes if o.status is not None and o.status >= 500)
    unanswered = sum(1 for o in outcomes if o.status is None)
    latencies = sorted(o.latency for o in outcomes if o.status is not None)
    p95 = latencies[max(0, -(-len(latencies) * 95 // 100) - 1)] if latencies else None
    return TrafficSummary(len(outcomes), errors, unanswered, p95)
