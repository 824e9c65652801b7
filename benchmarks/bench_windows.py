"""Windows: what one sample costs, how right the quantiles are, and what a window weighs.

watchdogd's ``core.window.Window`` (300 x 1 s buckets of counts and log-spaced latency bins)
against two baselines run here on the same samples:

* the **exact window**: a deque of every raw sample in the last 300 s, trimmed on each add,
  with quantiles from a sort (what a straightforward implementation does). It is the
  reference for the error and the baseline for speed and memory;
* for quantile error only, a **Prometheus histogram** with the client libraries' default
  buckets (5 ms ... 10 s) read with ``histogram_quantile``'s linear interpolation, which is
  how most people get a p99 from an app's metrics today.

Latency samples are drawn from three shapes: lognormal around 50 ms (a healthy API), a 90/10
mix of 20 ms and 800 ms (a cache in front of a slow database), and log-uniform over 1 ms to
30 s (the worst case for fixed buckets). Targets: ingest at most 2 us a sample, quantile error
at most 1 %.
"""

from __future__ import annotations

import bisect
import collections
import math
import random
import time
import tracemalloc
from collections.abc import Callable

from common import Row

from watchdogd.core.window import Window

SPAN = 300.0
QUANTILES = (0.5, 0.95, 0.99)
PROMETHEUS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ExactWindow:
    """Every sample of the last ``span`` seconds, in arrival order."""

    def __init__(self, span: float = SPAN) -> None:
        self.span = span
        self.samples: collections.deque[tuple[float, bool, float]] = collections.deque()

    def add(self, now: float, ok: bool, latency: float) -> None:
        self.samples.append((now, ok, latency))
        horizon = now - self.span
        while self.samples[0][0] <= horizon:
            self.samples.popleft()

    def quantiles(self) -> list[float]:
        ordered = sorted(s[2] for s in self.samples)
        return [ordered[max(0, math.ceil(q * len(ordered)) - 1)] for q in QUANTILES]


def prometheus_quantile(values: list[float], q: float) -> float:
    """``histogram_quantile(q, ...)`` over the default buckets, as Prometheus computes it."""
    counts = [0] * (len(PROMETHEUS_BUCKETS) + 1)
    for value in values:
        counts[bisect.bisect_left(PROMETHEUS_BUCKETS, value)] += 1
    rank = q * len(values)
    cumulative = 0
    for index, count in enumerate(counts):
        if cumulative + count >= rank and count:
            if index == len(PROMETHEUS_BUCKETS):
                return PROMETHEUS_BUCKETS[-1]  # the +Inf bucket reports the highest bound
            lower = PROMETHEUS_BUCKETS[index - 1] if index else 0.0
            upper = PROMETHEUS_BUCKETS[index]
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
    return PROMETHEUS_BUCKETS[-1]


def shapes(rng: random.Random) -> dict[str, Callable[[], float]]:
    return {
        "lognormal 50 ms": lambda: rng.lognormvariate(math.log(0.05), 0.5),
        "bimodal 20/800 ms": lambda: 0.02 if rng.random() < 0.9 else 0.8,
        "log-uniform 1 ms-30 s": lambda: math.exp(rng.uniform(math.log(0.001), math.log(30))),
    }


def quantile_errors(rate: float, rng: random.Random) -> tuple[float, float]:
    """Worst relative error of p50/p95/p99 over the shapes: (watchdogd, Prometheus)."""
    ours_worst = prom_worst = 0.0
    for draw in shapes(rng).values():
        window, exact = Window(span=SPAN), ExactWindow()
        step = 1.0 / rate
        now = 0.0
        for _ in range(int(SPAN * rate)):
            now += step
            latency = draw()
            window.add(now, True, latency)
            exact.add(now, True, latency)
        truth = exact.quantiles()
        stats = window.stats(now)
        values = [s[2] for s in exact.samples]
        for q, true, ours in zip(QUANTILES, truth, (stats.p50, stats.p95, stats.p99), strict=True):
            assert ours is not None
            ours_worst = max(ours_worst, abs(ours - true) / true)
            prom_worst = max(prom_worst, abs(prometheus_quantile(values, q) - true) / true)
    return ours_worst, prom_worst


def ingest_ns(make: Callable[[], Window | ExactWindow], rate: float, samples: int) -> float:
    """Nanoseconds per ``add`` at ``rate`` samples a second, with a full window."""
    rng = random.Random(7)
    latencies = [rng.lognormvariate(math.log(0.05), 0.5) for _ in range(4096)]
    oks = [rng.random() > 0.005 for _ in range(4096)]
    window = make()
    step = 1.0 / rate
    now = 0.0
    for i in range(int(SPAN * rate)):  # fill it first: expiry is part of the steady state
        now += step
        window.add(now, oks[i & 4095], latencies[i & 4095])
    best = math.inf
    for _ in range(3):
        started = time.perf_counter_ns()
        for i in range(samples):
            now += step
            window.add(now, oks[i & 4095], latencies[i & 4095])
        best = min(best, (time.perf_counter_ns() - started) / samples)
    return best


def query_ms(rate: float) -> tuple[float, float]:
    """Milliseconds for p50/p95/p99 of a full window: (watchdogd, exact sort)."""
    rng = random.Random(3)
    window, exact = Window(span=SPAN), ExactWindow()
    now = 0.0
    for _ in range(int(SPAN * rate)):
        now += 1.0 / rate
        latency = rng.lognormvariate(math.log(0.05), 0.5)
        window.add(now, True, latency)
        exact.add(now, True, latency)
    timings = []
    for target in (lambda: window.stats(now), exact.quantiles):
        started = time.perf_counter()
        for _ in range(20):
            target()
        timings.append((time.perf_counter() - started) / 20 * 1000)
    return timings[0], timings[1]


def memory_kib(make: Callable[[], Window | ExactWindow], rate: float) -> float:
    """KiB one full window holds at ``rate`` samples a second (tracemalloc)."""
    rng = random.Random(5)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    window = make()
    now = 0.0
    for _ in range(int(SPAN * rate)):
        now += 1.0 / rate
        window.add(now, rng.random() > 0.005, rng.lognormvariate(math.log(0.05), 0.5))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del window
    return used / 1024


def run(quick: bool = False) -> list[Row]:
    samples = 50_000 if quick else 300_000
    rng = random.Random(11)
    rows: list[Row] = []
    for rate in (1.0, 20.0):
        ours = ingest_ns(Window, rate, samples)
        exact = ingest_ns(ExactWindow, rate, samples)
        rows.append(
            Row(
                "windows",
                f"ingest at {rate:g} samples/s",
                ours,
                "ns/sample",
                "exact deque",
                exact,
                "<= 2000 ns",
                ours <= 2000,
            )
        )
    for rate in (1.0, 20.0):
        ours_err, prom_err = quantile_errors(rate, rng)
        rows.append(
            Row(
                "windows",
                f"worst p50/p95/p99 error at {rate:g}/s",
                ours_err * 100,
                "%",
                "Prometheus default buckets",
                prom_err * 100,
                "<= 1 %",
                ours_err <= 0.01,
                note="against the exact nearest-rank quantile of the same samples, "
                "worst over three latency shapes"
                if rate == 1.0
                else "",
            )
        )
    ours_q, exact_q = query_ms(20.0)
    rows.append(
        Row("windows", "p50/p95/p99 query, 6000 samples", ours_q, "ms", "exact sort", exact_q)
    )
    for rate in (1.0, 20.0):
        ours_mem = memory_kib(Window, rate)
        exact_mem = memory_kib(ExactWindow, rate)
        rows.append(
            Row(
                "windows",
                f"memory per check window at {rate:g}/s",
                ours_mem,
                "KiB",
                "exact deque",
                exact_mem,
            )
        )
    return rows


if __name__ == "__main__":
    from common import print_table

    print_table(run())
