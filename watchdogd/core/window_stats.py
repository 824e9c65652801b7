"""What a window says at one ``now``: the numbers every gate reads (see ``window``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WindowStats"]


@dataclass(frozen=True, slots=True)
class WindowStats:
    """A snapshot of one window at one ``now``. Latencies are in seconds."""

    count: int
    errors: int
    error_ratio: float | None
    latency_count: int
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    max: float | None
    consecutive_failures: int
    last_ok: bool | None
    last_sample_at: float | None
    last_value: float | None
    # When the trailing failure run started and its newest failure: bursts are not outages.
    run_started_at: float | None = None
    run_last_at: float | None = None
    # When the run's first failed probe was sent; whether every failure of the run answered
    # nothing (timed out past the smallest latency threshold, or refused: no latency);
    # the probes sent after the newest successful answer still waiting past that threshold,
    # with the newest moment one passed it: a hang answers nothing (``gates``).
    run_sent_at: float | None = None
    run_silent: bool = False
    unanswered: int = 0
    unanswered_passed_at: float | None = None
    # The latencies' standard deviation (the mean's confidence bound).
    # The window second by second, oldest first: samples, errors, latencies and, per
    # threshold, slow samples, for the burst clipping of the share tests (``gates``).
    counts_by_second: tuple[int, ...] = ()
    errors_by_second: tuple[int, ...] = ()
    latencies_by_second: tuple[int, ...] = ()
    slow_by_second: tuple[tuple[int, ...], ...] = ()
    latency_sd: float | None = None
    # Per latency threshold the window counts (see ``exceedance``); in-flight probes already
    # past a threshold count as slow samples in ``slow``, ``seen`` and the run.
    thresholds: tuple[float, ...] = ()
    slow: tuple[int, ...] = ()
    seen: tuple[int, ...] = ()
    slow_run: tuple[int, ...] = ()
    slow_run_span: tuple[float, ...] = ()

    @property
    def run_span(self) -> float:
        """Seconds from the first to the newest failure of the trailing run (0 without one)."""
        if self.run_started_at is None or self.run_last_at is None:
            return 0.0
        return self.run_last_at - self.run_started_at

    @property
    def hang_span(self) -> float:
        """Seconds from the sending of the first probe of a silent failure run (none answered)
        to the newest moment a probe sent after the newest answer passed the smallest latency
        threshold (0 without both): a hang's evidence (``gates``, rule 4)."""
        if not self.run_silent or self.run_sent_at is None or self.unanswered_passed_at is None:
            return 0.0
        return self.unanswered_passed_at - self.run_sent_at

    def latency(self, which: str) -> float | None:
        """Return the latency statistic named ``which``: p50, p95, p99, mean or max."""
        if which == "p50":
            return self.p50
        if which == "p95":
            return self.p95
        if which == "p99":
            return self.p99
        if which == "mean":
            return self.mean
        if which == "max":
            return self.max
        raise ValueError(f"unknown latency statistic {which!r}")
