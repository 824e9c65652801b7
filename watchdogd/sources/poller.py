"""The common shape of the polling sources (http, auth_flow, scrape, promql): one check, one
sink, the shared client, and ``probe_once`` run every ``interval`` on a jittered fixed-rate
schedule. Subclasses set up their own state in ``_prepare`` and implement ``probe_once``."""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Generic, TypeVar

import structlog

from watchdogd.config.schema import CheckBase
from watchdogd.sources.base import SampleSink
from watchdogd.sources.probe_client import ProbeClient
from watchdogd.sources.schedule import Clock, run_every

CheckT = TypeVar("CheckT", bound=CheckBase)

log = structlog.get_logger(__name__)

#: The most runs of one check in flight at a time (all inside the client's in-flight limit).
MAX_OVERLAP = 4


class Poller(Generic[CheckT]):
    def __init__(
        self,
        check: CheckT,
        sink: SampleSink,
        client: ProbeClient,
        *,
        secrets: frozenset[str] = frozenset(),
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.check = check
        self._sink = sink
        self._client = client
        self._secrets = secrets
        self._clock = clock
        self._rng = rng
        self._running = False
        self._look_pending = False
        self._extra: set[asyncio.Task[None]] = set()
        self._prepare()

    def _prepare(self) -> None:
        """Build what a subclass needs from ``self.check`` (called once, at construction)."""

    #: Probes may overlap (http, auth_flow); sources whose runs must stay in order may not.
    overlapping = False

    @property
    def overlap(self) -> int:
        """Runs in flight at a time: enough that a run waiting out its timeout does not delay
        the next ones (``ceil(timeout / interval)``), at most ``MAX_OVERLAP``."""
        if not self.overlapping:
            return 1
        return max(1, min(MAX_OVERLAP, math.ceil(self.check.timeout / self.check.interval)))

    async def run(self) -> None:
        self._running = True
        try:
            await run_every(
                self.check.interval,
                lambda _due: self.probe_once(),
                name=self.check.name,
                clock=self._clock,
                rng=self._rng,
                overlap=self.overlap,
            )
        finally:
            self._running = False
            for task in self._extra:
                task.cancel()

    def _look_again(self) -> None:
        """A probe failed: probe once more half an interval later, on top of the schedule. An
        outage then shows as failures every half interval, so the hard-down rule (failures
        spanning 1.5 s) is met 1.5 s after the first failure instead of 2 s; a healthy target
        costs nothing. Only while ``run`` runs, and within ``overlap``."""
        if not (self._running and self.overlapping) or self._look_pending:
            return
        self._look_pending = True
        asyncio.get_running_loop().call_later(self.check.interval / 2, self._probe_extra)

    def _probe_extra(self) -> None:
        self._look_pending = False
        if not self._running or len(self._extra) >= self.overlap:
            return
        task = asyncio.get_running_loop().create_task(self._extra_probe())
        self._extra.add(task)
        task.add_done_callback(self._extra.discard)

    async def _extra_probe(self) -> None:
        try:
            await self.probe_once()
        except Exception:  # as in run_every: a source's bug must not end the schedule
            log.exception("extra_probe_crashed", check=self.check.name)

    async def probe_once(self) -> None:
        raise NotImplementedError
