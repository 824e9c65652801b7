"""The common shape of the polling sources (http, auth_flow, scrape, promql): one check, one
sink, the shared client, and ``probe_once`` run every ``interval`` on a jittered fixed-rate
schedule. Subclasses set up their own state in ``_prepare`` and implement ``probe_once``."""

from __future__ import annotations

import random
import time
from typing import Generic, TypeVar

from watchdogd.config.schema import CheckBase
from watchdogd.sources.base import SampleSink
from watchdogd.sources.probe_client import ProbeClient
from watchdogd.sources.schedule import Clock, run_every

CheckT = TypeVar("CheckT", bound=CheckBase)


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
        self._prepare()

    def _prepare(self) -> None:
        """Build what a subclass needs from ``self.check`` (called once, at construction)."""

    async def run(self) -> None:
        await run_every(
            self.check.interval,
            lambda _due: self.probe_once(),
            name=self.check.name,
            clock=self._clock,
            rng=self._rng,
        )

    async def probe_once(self) -> None:
        raise NotImplementedError
