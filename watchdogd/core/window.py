"""A sliding window of samples for one (target, check) pair.

Rules this module keeps:

1. No I/O and no clock. Every call takes ``now``: seconds on a monotonic-style clock.
2. Ingest is O(1) amortised and allocates nothing per sample beyond dict increments, because
   a scrape of a busy service can feed thousands of samples a second per window.
3. Memory is bounded whatever the sample rate: at most ``buckets`` x ``latency bins`` counters,
   and the number of latency bins is fixed by the clamped latency range.

Theory of operation
-------------------
The window is a ring of ``span / bucket`` buckets (default 300 x 1 s). Bucket number
``floor(now / bucket)`` holds that slice of time: sample count, error count, latency count,
sum and max, and a sparse histogram of latency bins. The window at ``now`` is the live buckets
``floor(now / bucket) - n + 1 .. floor(now / bucket)``, so it covers the last ``span`` seconds
rounded to whole buckets. Buckets are expired lazily: when ``now`` moves past them, on ``add*``
or ``stats``. A jump further than the whole span clears everything at once, so the cost of a
jump is at most O(buckets).

A sample whose ``now`` lies slightly in the past (clock jitter between sources) still lands in
its own bucket if that bucket is live; an older sample is dropped. A late sample counts, but it
does not change the "most recent" fields (``last_ok``, ``consecutive_failures``).

Latency quantiles use the log-spaced bins of ``latency_bins`` (DDSketch-style, accurate to
``relative_accuracy``). The window keeps one merged histogram up to date as buckets come and
go, so ``stats`` only sorts the (few hundred at most) occupied bins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from watchdogd.core.exceedance import Exceedances
from watchdogd.core.failure_run import FailureRun
from watchdogd.core.latency_bins import MAX_LATENCY, MIN_LATENCY, LatencyBins
from watchdogd.core.window_stats import WindowStats

__all__ = ["MAX_LATENCY", "MIN_LATENCY", "Window", "WindowStats"]

RECENT = 60
"""Seconds (one-second buckets) of the short window that share tests also run on (``gates``)."""


class Window:
    """Counts, errors and latency quantiles over the last ``span`` seconds."""

    __slots__ = (
        "_bins",
        "_count",
        "_errors",
        "_exceed",
        "_head",
        "_last_ok",
        "_last_ok_at",
        "_last_ok_bucket",
        "_last_sample_at",
        "_last_value",
        "_last_value_at",
        "_last_value_bucket",
        "_lat_count",
        "_lat_max",
        "_lat_sq",
        "_lat_sum",
        "_latency_bins",
        "_merged",
        "_n",
        "_run",
        "_width",
    )

    def __init__(
        self,
        span: float = 300.0,
        bucket: float = 1.0,
        relative_accuracy: float = 0.01,
        thresholds: Iterable[float] = (),
    ) -> None:
        if not bucket > 0.0:
            raise ValueError(f"bucket must be positive, got {bucket!r}")
        n = round(span / bucket)
        if n < 1 or not math.isclose(n * bucket, span, rel_tol=1e-9):
            raise ValueError(f"span {span!r} is not a whole number of {bucket!r} s buckets")
        self._n = n
        self._width = bucket
        self._exceed = Exceedances(thresholds, n)
        self._latency_bins = LatencyBins(relative_accuracy)

        # One list per column rather than one object per bucket: add() then does plain
        # list-slot arithmetic, and sum()/max() over a column run in C.
        self._count = [0] * n
        self._errors = [0] * n
        self._lat_count = [0] * n
        self._lat_sum = [0.0] * n
        self._lat_sq = [0.0] * n
        self._lat_max = [0.0] * n  # latencies are >= 0, so 0.0 doubles as "empty"
        self._bins: list[dict[int, int]] = [{} for _ in range(n)]
        self._merged: dict[int, int] = {}  # sum of all live buckets' bins
        self._head: int | None = None  # absolute number of the newest bucket

        self._last_ok: bool | None = None
        self._last_ok_at = -math.inf
        self._last_ok_bucket = 0
        self._run = FailureRun()
        self._last_value: float | None = None
        self._last_value_at = -math.inf
        self._last_value_bucket = 0
        self._last_sample_at = -math.inf  # reported as None until the first sample

    @property
    def span(self) -> float:
        """Seconds covered by the window, a whole number of buckets."""
        return self._n * self._width

    @property
    def bin_count(self) -> int:
        """Latency bins currently allocated, over all buckets and the merged histogram."""
        return len(self._merged) + sum(len(bins) for bins in self._bins)

    @property
    def max_bins_per_histogram(self) -> int:
        """The most bins one bucket (or the merged histogram) can ever hold."""
        return self._latency_bins.max_index - self._latency_bins.zero_index + 1

    # -- ingest ---------------------------------------------------------------------------

    def add(self, now: float, ok: bool, latency: float | None = None, count: int = 1) -> None:
        """Record ``count`` probes or requests with the same outcome (and latency, if given)."""
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count!r}")
        # The body of _bucket() and _note_outcome(), inlined: this is the per-request path.
        number = math.floor(now / self._width)
        head = self._head
        if head is None or number > head:
            self._advance(number)
        elif number <= head - self._n:
            return  # older than the window
        slot = number % self._n
        latest = now >= self._last_ok_at
        if latency is not None:  # first: it validates, and a bad latency must change nothing
            self._record_latency(slot, latency, count)
            if self._exceed.thresholds:
                self._exceed.add(slot, now, latency, count, latest)
        self._count[slot] += count
        if not ok:
            self._errors[slot] += count
        else:
            self._run.answered(now)
        if latest:
            if ok:
                self._run.count = 0
            else:
                thresholds = self._exceed.thresholds
                self._run.fail(now, latency, count, thresholds[0] if thresholds else math.inf)
            self._last_ok = ok
            self._last_ok_at = now
            self._last_ok_bucket = number
            if now > self._last_sample_at:  # noqa: PLR1730  cheaper than max() per request
                self._last_sample_at = now

    def add_counts(self, now: float, requests: int, errors: int) -> None:
        """Record counter deltas from a scrape: ``requests`` seen, ``errors`` of them failed.

        The order of outcomes inside a delta is unknown, so the trailing failure run only
        grows when the whole delta failed; a delta with any success ends the run, which errs
        towards not taking the hard-down fast path.
        """
        if requests < 0 or not 0 <= errors <= requests:
            raise ValueError(f"need 0 <= errors <= requests, got {errors!r} of {requests!r}")
        number = self._bucket(now)
        if number is None:
            return
        if requests:
            slot = number % self._n
            if errors < requests:
                self._run.answered(now)
            self._count[slot] += requests
            self._errors[slot] += errors
            self._note_outcome(now, number, failed=errors, succeeded=errors < requests)
        # An empty delta still proves the source is alive.
        self._last_sample_at = max(self._last_sample_at, now)

    def add_latency(
        self, now: float, latency: float, count: int = 1, *, above: bool = False
    ) -> None:
        """Record ``count`` latencies without outcomes (histogram deltas from a scrape).

        With ``above``, each is known only to be *above* ``latency`` (the lower bound of its
        histogram bucket): it is recorded at that bound, never higher than what is known.
        """
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count!r}")
        number = self._bucket(now)
        if number is None:
            return
        slot = number % self._n
        self._record_latency(slot, latency, count)
        if above:
            self._exceed.add_above(slot, latency, count)
        elif self._exceed.thresholds:
            self._exceed.add(slot, now, latency, count, latest=False)
        self._last_sample_at = max(self._last_sample_at, now)

    def add_value(self, now: float, value: float) -> None:
        """Record the latest reading of a gauge (for example the result of a PromQL query)."""
        number = self._bucket(now)
        if number is None:
            return
        # Readings are point-in-time, not counts: only the newest one matters.
        if now >= self._last_value_at:
            self._last_value = value
            self._last_value_at = now
            self._last_value_bucket = number
        self._last_sample_at = max(self._last_sample_at, now)

    def _bucket(self, now: float) -> int | None:
        """Expire buckets up to ``now``; return its bucket number, or None if it is too old."""
        number = math.floor(now / self._width)
        head = self._head
        if head is None or number > head:
            self._advance(number)
        elif number <= head - self._n:
            return None
        return number

    def _record_latency(self, slot: int, latency: float, count: int) -> None:
        if not latency >= 0.0:  # also rejects NaN, which would poison the sums
            raise ValueError(f"latency must be a non-negative number, got {latency!r}")
        if latency > MAX_LATENCY:  # noqa: PLR1730  a comparison is cheaper than min() here
            latency = MAX_LATENCY
        key = self._latency_bins.key(latency)
        bins = self._bins[slot]
        bins[key] = bins.get(key, 0) + count
        merged = self._merged
        merged[key] = merged.get(key, 0) + count
        self._lat_count[slot] += count
        self._lat_sum[slot] += latency * count
        self._lat_sq[slot] += latency * latency * count
        if latency > self._lat_max[slot]:  # noqa: PLR1730  likewise, on the per-request path
            self._lat_max[slot] = latency

    def _note_outcome(self, now: float, number: int, failed: int, succeeded: bool) -> None:
        # A late batch counts in its bucket but does not rewrite the "most recent" fields.
        if now >= self._last_ok_at:
            # A success anywhere in the newest batch ends the run; its failures are then
            # of unknown order, so they do not start a new one.
            if succeeded:
                self._run.count = 0
            else:
                self._run.fail_counted(now, failed)
            self._last_ok = succeeded
            self._last_ok_at = now
            self._last_ok_bucket = number

    # -- expiry ---------------------------------------------------------------------------

    def _advance(self, number: int) -> None:
        """Make ``number`` the newest bucket, clearing every bucket it overtakes."""
        head = self._head
        self._head = number
        if head is None:
            return  # first sample: the ring is already empty
        if number - head >= self._n:
            self._clear_all()
            return
        for passed in range(head + 1, number + 1):
            self._clear_slot(passed % self._n)

    def _clear_slot(self, slot: int) -> None:
        bins = self._bins[slot]
        if bins:
            merged = self._merged
            for key, count in bins.items():
                left = merged[key] - count
                if left:
                    merged[key] = left
                else:
                    del merged[key]
            bins.clear()
        self._count[slot] = 0
        self._errors[slot] = 0
        self._lat_count[slot] = 0
        self._lat_sum[slot] = 0.0
        self._lat_sq[slot] = 0.0
        self._lat_max[slot] = 0.0
        self._exceed.clear(slot)

    def _clear_all(self) -> None:
        n = self._n
        self._count = [0] * n
        self._errors = [0] * n
        self._lat_count = [0] * n
        self._lat_sum = [0.0] * n
        self._lat_sq = [0.0] * n
        self._lat_max = [0.0] * n
        self._exceed.clear_all()
        for bins in self._bins:
            bins.clear()
        self._merged.clear()

    # -- read -----------------------------------------------------------------------------

    def latencies_above(self, latency: float) -> int:
        """Latencies surely above ``latency`` in the window as of the last ``stats``: the
        bins past the one ``latency`` falls in. That bin is left out, so the count never
        exceeds the truth (a baseline gate must not breach on a rounding)."""
        key = self._latency_bins.key(min(max(latency, 0.0), MAX_LATENCY))
        return sum(count for bin_key, count in self._merged.items() if bin_key > key)

    def stats(self, now: float, in_flight: Sequence[float] = ()) -> WindowStats:
        """Summarise the live buckets at ``now``; buckets older than the span are expired.

        ``in_flight`` holds the start times of probes still waiting for an answer: one waiting
        longer than a threshold is already a sample above it ("at least that slow"), and one
        sent after the newest successful answer and waiting past the smallest threshold is
        hang evidence (``unanswered_*``: nothing has answered since).
        """
        number = math.floor(now / self._width)
        if self._head is not None and number > self._head:
            self._advance(number)
        # The oldest live bucket; anything "latest" that is older has left the window.
        head = self._head if self._head is not None else number
        oldest = head - self._n + 1

        count = sum(self._count)
        errors = sum(self._errors)
        latency_count = sum(self._lat_count)
        p50 = p95 = p99 = mean = maximum = latency_sd = None
        if latency_count:
            maximum = max(self._lat_max)
            p50, p95, p99 = self._latency_bins.percentiles(self._merged, latency_count, maximum)
            mean = sum(self._lat_sum) / latency_count
            variance = sum(self._lat_sq) / latency_count - mean * mean
            latency_sd = math.sqrt(max(0.0, variance) * latency_count / max(1, latency_count - 1))

        ok_live = self._last_ok is not None and self._last_ok_bucket >= oldest
        oldest_slot = (head + 1) % self._n

        def turned(column: list[int]) -> tuple[int, ...]:
            return tuple(column[oldest_slot:] + column[:oldest_slot])  # oldest first

        exceed = self._exceed
        slow = exceed.summary(now, in_flight, latency_count, oldest * self._width, oldest_slot)
        run = self._run
        run_live = ok_live and run.count > 0
        unanswered: list[float] = []
        if in_flight and exceed.thresholds:
            first = exceed.thresholds[0]
            unanswered = [
                start + first
                for start in in_flight
                if now - start > first and start > run.answered_at
            ]
        value_live = self._last_value is not None and self._last_value_bucket >= oldest
        return WindowStats(
            count=count,
            errors=errors,
            error_ratio=errors / count if count else None,
            latency_count=latency_count,
            p50=p50,
            p95=p95,
            p99=p99,
            mean=mean,
            max=maximum,
            consecutive_failures=run.count if ok_live else 0,
            last_ok=self._last_ok if ok_live else None,
            last_sample_at=self._last_sample_at if self._last_sample_at > -math.inf else None,
            last_value=self._last_value if value_live else None,
            run_started_at=run.first if run_live else None,
            run_last_at=run.last if run_live else None,
            run_sent_at=run.sent if run_live else None,
            run_silent=run_live and run.silent,
            unanswered=len(unanswered),
            unanswered_passed_at=max(unanswered) if unanswered else None,
            counts_by_second=turned(self._count),
            errors_by_second=turned(self._errors),
            latencies_by_second=turned(self._lat_count),
            slow_by_second=slow.by_second,
            latency_sd=latency_sd,
            thresholds=exceed.thresholds,
            slow=slow.slow,
            seen=slow.seen,
            slow_run=slow.runs,
            slow_run_span=slow.spans,
        )
