"""The seam between sources and the rest of the daemon.

A source never judges its target. It reports what it saw to a :class:`SampleSink`; the daemon's
sink feeds the check's window and metrics. When a source cannot see its target (engine down,
connection refused to Prometheus), it reports :meth:`SampleSink.unknown`, which gates treat as
"no data", never as "bad".
"""

from __future__ import annotations

from typing import Protocol


class SampleSink(Protocol):
    """Where one check's observations go. ``now`` is ``time.monotonic()``."""

    def probe_started(self, now: float) -> int:
        """A probe was sent; returns a token for its :meth:`probe` (or :meth:`unknown`). While
        it waits, it is evidence that the target is at least that slow."""
        ...

    def probe(
        self,
        now: float,
        ok: bool,
        latency: float | None,
        detail: str = "",
        token: int | None = None,
    ) -> None:
        """One probe or flow run: success or failure, and how long it took (seconds)."""

    def counts(self, now: float, requests: int, errors: int) -> None:
        """Request and error counts seen since the previous report (scraped counter deltas)."""

    def latency(self, now: float, seconds: float, count: int = 1, *, above: bool = False) -> None:
        """``count`` latency observations of ``seconds``; with ``above``, known only to be
        above ``seconds`` (the lower bound of a scraped histogram bucket)."""

    def value(self, now: float, value: float) -> None:
        """A plain number (a PromQL result)."""

    def unknown(self, now: float, reason: str, token: int | None = None) -> None:
        """The source cannot observe its target right now; the data is unknown."""


class Source(Protocol):
    """A running source: ``run`` loops until cancelled and reports to its sink(s)."""

    async def run(self) -> None: ...
