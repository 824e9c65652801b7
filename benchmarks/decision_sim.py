"""Decision-quality simulation: how often the default gates cry wolf, and how fast they see a wolf.

Run it as ``python benchmarks/decision_sim.py``. It replays synthetic traffic through a
``Window`` and two gates with the default settings from ``watchdogd.core.gates``:

* ``error_rate above 1 %`` (Wilson lower bound, min_samples 20, hard-down fast path), and
* ``latency_p95 above 2 s`` (min_samples 20),

on a simulated clock: samples are evenly spaced at the given rate (with a random phase per
seed), and both gates are evaluated once per simulated second, after the samples up to that
second. Nothing sleeps and nothing reads a clock, so every seed gives the same numbers.

Healthy traffic has 0.5 % errors and lognormal latencies around 50 ms (sigma 0.5). A trigger
is a transition of either gate into BREACHED. A regression is a step change after ten healthy
minutes, so the five-minute window is full of good samples when it starts; the time to detect
is from the first bad sample's second to the first BREACHED evaluation.

Targets (exit code 1 if one fails): no false trigger in 24 h at either rate; 100 % errors
caught in 3 s or less at 1 sample/s; 5 % errors caught in 60 s or less at 20 samples/s (median
over the seeds).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from watchdogd.core.gates import Gate, GateMetric, GateSpec, Verdict
from watchdogd.core.window import Window

__all__ = [
    "HEALTHY",
    "Traffic",
    "main",
    "simulate_false_triggers",
    "time_to_detect",
]

ERROR_GATE = GateSpec(name="traffic:error_rate", metric=GateMetric.ERROR_RATE, above=0.01)
LATENCY_GATE = GateSpec(
    name="traffic:latency_p95", metric=GateMetric.LATENCY_P95, above=2.0, min_samples=20
)
SEEDS = (1, 2, 3, 4, 5)
HEALTHY_FOR = 600  # seconds of good traffic before a regression: two full windows
HORIZON = 900  # seconds after a regression before we call it missed


@dataclass(frozen=True)
class Traffic:
    """What the service returns: an error probability and a lognormal latency."""

    error_rate: float
    latency_median: float = 0.05
    latency_sigma: float = 0.5


HEALTHY = Traffic(error_rate=0.005)


def _run(
    rate_per_s: float,
    seconds: int,
    seed: int,
    bad: Traffic | None = None,
    bad_from: int = 0,
) -> tuple[int, int | None]:
    """Simulate ``seconds`` of traffic; return (triggers before ``bad_from``, detection second).

    The detection second is the first evaluation at or after ``bad_from`` with a gate in
    BREACHED, or None. Without ``bad`` the whole run is healthy and counts triggers only.
    """
    rng = random.Random(seed)
    uniform, gauss = rng.random, rng.gauss  # bound once: this loop runs millions of times
    window = Window()
    add = window.add
    gates = [Gate(ERROR_GATE), Gate(LATENCY_GATE)]
    breached = [False] * len(gates)
    interval = 1.0 / rate_per_s
    phase = uniform() * interval
    k = 0  # index of the next sample; its time is phase + k * interval
    triggers = 0
    traffic = HEALTHY
    for now in range(1, seconds + 1):
        while (at := phase + k * interval) <= now:
            if bad is not None and at >= bad_from:
                traffic = bad
            ok = uniform() >= traffic.error_rate
            add(at, ok, traffic.latency_median * math.exp(traffic.latency_sigma * gauss()))
            k += 1
        stats = window.stats(now)
        for i, gate in enumerate(gates):
            is_breached = gate.evaluate(stats, now).verdict is Verdict.BREACHED
            if bad is not None and now >= bad_from and is_breached:
                return triggers, now
            if is_breached and not breached[i]:
                triggers += 1
            breached[i] = is_breached
    return triggers, None


def simulate_false_triggers(rate_per_s: float, hours: float, seed: int) -> int:
    """Transitions into BREACHED during ``hours`` of healthy traffic (0.5 % errors)."""
    return _run(rate_per_s, round(hours * 3600), seed)[0]


def time_to_detect(
    rate_per_s: float,
    bad: Traffic,
    seed: int,
    healthy_for: int = HEALTHY_FOR,
    horizon: int = HORIZON,
) -> float | None:
    """Seconds from a step to ``bad`` traffic until a gate is BREACHED; None if missed."""
    _, detected = _run(rate_per_s, healthy_for + horizon, seed, bad=bad, bad_from=healthy_for)
    return None if detected is None else float(detected - healthy_for)


@dataclass(frozen=True)
class _Row:
    scenario: str
    rate: float
    result: str
    target: str
    passed: bool | None  # None: reported, no target


def _detection_row(
    scenario: str, rate: float, times: Sequence[float | None], limit: float | None
) -> _Row:
    caught = [t for t in times if t is not None]
    missed = len(times) - len(caught)
    median = statistics.median(math.inf if t is None else t for t in times)
    if caught:
        result = f"median {median:g} s (range {min(caught):g}-{max(caught):g} s)"
        if missed:
            result += f", {missed} missed in {HORIZON} s"
    else:
        result = f"missed in {HORIZON} s by every seed"
    if limit is None:
        return _Row(scenario, rate, result, "-", None)
    return _Row(scenario, rate, result, f"<= {limit:g} s", median <= limit)


def _false_trigger_row(rate: float, hours: float, counts: Sequence[int]) -> _Row:
    total = sum(counts)
    result = f"{total} in {len(counts)} x {hours:g} h (per seed: {', '.join(map(str, counts))})"
    scenario = f"false triggers, healthy ({HEALTHY.error_rate:.1%} errors)"
    return _Row(scenario, rate, result, "0", total == 0)


def _print_table(rows: Sequence[_Row]) -> None:
    header = ("scenario", "samples/s", "result", "target", "status")
    table = [header] + [
        (
            row.scenario,
            f"{row.rate:g}",
            row.result,
            row.target,
            "-" if row.passed is None else ("PASS" if row.passed else "FAIL"),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for n, line in enumerate(table):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def main() -> int:
    hours = 24.0
    rates = (1, 20)
    regressions = [
        ("100% errors", Traffic(error_rate=1.0), {1: 3.0}),
        ("20% errors", Traffic(error_rate=0.2), {}),
        ("5% errors", Traffic(error_rate=0.05), {20: 60.0}),
        ("latency 50 ms -> 3 s", Traffic(error_rate=0.005, latency_median=3.0), {}),
    ]
    # Each run is independent and seeded, so spreading them over processes changes the wall
    # time only: 24 h at 20 samples/s is 1.7 M samples per seed.
    with ProcessPoolExecutor() as pool:
        quiet = {
            rate: [pool.submit(simulate_false_triggers, rate, hours, seed) for seed in SEEDS]
            for rate in rates
        }
        detect = {
            (name, rate): [pool.submit(time_to_detect, rate, bad, seed) for seed in SEEDS]
            for name, bad, _ in regressions
            for rate in rates
        }
        rows = [
            _false_trigger_row(rate, hours, [job.result() for job in quiet[rate]]) for rate in rates
        ]
        rows.extend(
            _detection_row(
                f"detect {name}",
                rate,
                [job.result() for job in detect[name, rate]],
                limits.get(rate),
            )
            for name, _, limits in regressions
            for rate in rates
        )

    _print_table(rows)
    print(
        f"\nseeds {', '.join(map(str, SEEDS))}; {ERROR_GATE.metric} > {ERROR_GATE.above:.0%}"
        f" (confidence {ERROR_GATE.confidence}, min_errors {ERROR_GATE.min_errors},"
        f" consecutive_failures {ERROR_GATE.consecutive_failures}, min_samples"
        f" {ERROR_GATE.min_samples}); {LATENCY_GATE.metric} > {LATENCY_GATE.above:g} s;"
        " window 300 x 1 s"
    )
    passed = all(row.passed is not False for row in rows)
    return 0 if _baseline_rows() and passed else 1


def _baseline_rows() -> bool:
    """Hook: the baseline-vs-absolute table of benchmarks/baseline_sim.py (issue #15)."""
    import baseline_sim  # noqa: PLC0415 - a sibling script, on sys.path when run as one

    print()
    return baseline_sim.report()


if __name__ == "__main__":
    raise SystemExit(main())
