"""Decision-quality simulation: how often the default gates cry wolf, and how fast they see one.

Run it as ``python benchmarks/decision_sim.py`` (``--quick`` for a short smoke run). It drives
the daemon's own core (``sim_engine``: ``CheckRecorder``, ``Gate(GateConfig().spec())``,
``ScrapeSource.ingest``, the 1 s tick at a random phase plus evaluation on evidence) with the
traffic shapes of ``sim_shapes`` and prints one table per kind of question:

* **false triggers**: transitions into BREACHED over 24 simulated hours of a healthy shape;
* **detection**: a step to a bad release after ten healthy minutes (the window is full of good
  samples); time from the step to the first BREACHED, median and 90th percentile over the
  seeds, each seed with its own probe phase, tick phase and traffic;
* **deploys**: a fresh release baking for 5 minutes from empty windows; how many are rolled back.

Every row with a target says PASS or FAIL; the exit code is 1 when one fails. Rows are plain
data in ``TABLES``: a new question is a new table (or a new row), nothing else changes.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_engine import Feed, Outcome, Service, gates_for, simulate
from sim_shapes import (
    HANGING,
    REFUSING,
    Diurnal,
    Drift,
    Episodes,
    Fixed,
    Lognormal,
    Pauses,
    Replicas,
    Step,
    heavy_tail,
)

__all__ = ["TABLES", "Table", "main", "run_tables"]

HEALTHY = Lognormal()  # 0.5 % errors, latency around 50 ms
HEALTHY_FOR = 330.0  # seconds of good traffic before a regression: a full window and more
HORIZON = 600.0  # seconds after a regression before we call it missed
DAY = 86400.0

PROBE = Feed("probe", interval=1.0, timeout=10.0)
PROBE_3S = Feed("probe", interval=1.0, timeout=3.0)  # config/watchdogd.yaml's http check
PROBE_5S = Feed("probe", interval=1.0, timeout=5.0)


def requests(rate: float) -> Feed:
    return Feed("requests", rate=rate)


def scrape(rate: float, interval: float = 15.0) -> Feed:
    return Feed("scrape", rate=rate, interval=interval)


def diurnal(kind: str, shape: Diurnal) -> Feed:
    return Feed(kind, rate=shape.high, interval=15.0, rate_at=shape, peak=shape.high)


# --- rows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a table: ``jobs`` run in worker processes, ``summary`` reads their results
    and returns (result text, target text, passed or None when there is no target)."""

    name: str
    feed_name: str
    jobs: Callable[[int], list[Callable[[], Any]]]
    summary: Callable[[list[Any]], tuple[str, str, bool | None]]


@dataclass
class Table:
    title: str
    rows: list[Row] = field(default_factory=list)


def day_row(
    name: str,
    service: Service,
    feed: Feed,
    feed_name: str,
    *,
    days: int = 1,
    hours: float = 2.0,
    target: bool = True,
    **kw: Any,
) -> Row:
    """Healthy for ``days`` x ``hours`` (one seed each): target 0 false triggers (or a report).
    2 h by default and 24 h for the sigma 1.5 heavy tails, to fit a shared machine."""

    def jobs(scale: int) -> list[Callable[[], Any]]:
        seconds = hours * 3600.0 if scale else 3600.0
        return [partial(simulate, service, feed, seconds, seed, **kw) for seed in range(days)]

    def summary(results: list[Outcome]) -> tuple[str, str, bool | None]:
        total = sum(r.false_triggers for r in results)
        text = f"{total} in {len(results)} x {results[0].seconds / 3600:g} h"
        first = next((r.reasons[0] for r in results if r.reasons), None)
        if first:
            text += f" (first: {first[:70]})"
        return (text, "0", total == 0) if target else (text, "-", None)

    return Row(name, feed_name, jobs, summary)


def detect_row(
    name: str,
    bad: Service,
    feed: Feed,
    feed_name: str,
    *,
    median: float | None = None,
    p90: float | None = None,
    seeds: int = 100,
    before: Service = HEALTHY,
    **kw: Any,
) -> Row:
    """A step from ``before`` to ``bad``: detection time over ``seeds`` seeds."""

    def jobs(scale: int) -> list[Callable[[], Any]]:
        service = Step(before, bad, HEALTHY_FOR)
        count = seeds if scale else 10
        return [
            partial(simulate, service, feed, HEALTHY_FOR + HORIZON, seed, change=HEALTHY_FOR, **kw)
            for seed in range(1000, 1000 + count)
        ]

    def summary(results: list[Outcome]) -> tuple[str, str, bool | None]:
        false = sum(r.false_triggers for r in results)
        times = sorted(math.inf if r.detected is None else r.detected for r in results)
        mid = statistics.median(times)
        ninety = times[min(len(times) - 1, math.ceil(0.9 * len(times)) - 1)]
        missed = sum(1 for t in times if math.isinf(t))
        text = f"median {_s(mid)}, p90 {_s(ninety)} (n={len(times)}"
        text += f", {missed} missed in {HORIZON:g} s)" if missed else ")"
        if false:
            text += f", {false} false before the step"
        targets, passed = [], None
        if median is not None:
            targets.append(f"median <= {median:g} s")
            passed = mid <= median
        if p90 is not None:
            targets.append(f"p90 <= {p90:g} s")
            passed = bool(passed is not False and ninety <= p90)
        return text, ", ".join(targets) or "-", passed

    return Row(name, feed_name, jobs, summary)


def deploy_row(
    name: str,
    service: Service,
    feed: Feed,
    feed_name: str,
    *,
    deploys: int = 400,
    target: bool = True,
    **kw: Any,
) -> Row:
    """``deploys`` fresh releases of ``service`` baking 5 minutes: how many breach."""

    def jobs(scale: int) -> list[Callable[[], Any]]:
        count = deploys if scale else 20
        return [partial(simulate, service, feed, 300.0, seed, **kw) for seed in range(count)]

    def summary(results: list[Outcome]) -> tuple[str, str, bool | None]:
        rolled = sum(1 for r in results if r.false_triggers)
        first = next((r.reasons[0] for r in results if r.reasons), None)
        text = f"{rolled} of {len(results)} deploys rolled back"
        if first:
            text += f" (first: {first[:60]})"
        return text, "0" if target else "-", (rolled == 0) if target else None

    return Row(name, feed_name, jobs, summary)


def _s(seconds: float) -> str:
    return "missed" if math.isinf(seconds) else f"{seconds:.1f} s"


# --- the tables ------------------------------------------------------------------------


SIGMA1, SIGMA15 = heavy_tail(1.0), heavy_tail(1.5)
DOWN_503 = Fixed(False, 0.01)
BURSTS = Episodes(Lognormal(errors=0.002), DOWN_503, every=900.0, length=0.5)
BLIPS = Episodes(HEALTHY, DOWN_503, every=900.0, length=1.0)
SLOW_3S = Lognormal(3.0, 0.1)
DIURNAL = Diurnal(0.5, 50.0)
NIGHT_ZERO = Diurnal(0.0, 50.0, night_zero=True)

HEALTHY_DAYS = Table(
    "False triggers of healthy releases (hours simulated per row as shown)",
    [
        day_row("heavy tail sigma 1, true p95 1.6 s", SIGMA1, requests(5), "5/s"),
        day_row("heavy tail sigma 1.5, true p95 1.6 s", SIGMA15, requests(5), "5/s", hours=24),
        day_row("heavy tail sigma 1, true p95 1.6 s", SIGMA1, PROBE, "probe 1/s"),
        day_row("heavy tail sigma 1.5, true p95 1.6 s", SIGMA15, PROBE, "probe 1/s", hours=24),
        day_row("heavy tail sigma 1.5, true p95 1.6 s", SIGMA15, scrape(5), "scrape 5/s, 15 s"),
        day_row("error bursts: 10 in 0.5 s every 15 min", BURSTS, requests(20), "requests 20/s"),
        day_row(
            "error bursts: 10 in 0.5 s every 15 min",
            BURSTS,
            scrape(20),
            "scrape 20/s, 15 s",
        ),
        day_row("blips of 503s: 1 s every 15 min", BLIPS, PROBE, "probe 1/s"),
        day_row("blips of 503s: 1 s every 15 min", BLIPS, requests(20), "20/s"),
        day_row("low traffic, 0.5% errors", HEALTHY, requests(0.2), "requests 0.2/s"),
        day_row("diurnal, heavy tail sigma 1", SIGMA1, diurnal("requests", DIURNAL), "0.5-50/s"),
        day_row(
            "diurnal, heavy tail sigma 1",
            SIGMA1,
            diurnal("scrape", DIURNAL),
            "scrape 0.5-50/s",
        ),
        day_row("zero at night, heavy tail", SIGMA1, diurnal("requests", NIGHT_ZERO), "0-50/s"),
        day_row(
            "slow drift: p95 0.5 -> 1.6 s over 2 h",
            Drift(0.5 / 5.18, 1.6 / 5.18, 7200.0),
            requests(5),
            "requests 5/s",
        ),
        day_row("GC pause 3 s every 5 min", Pauses(SIGMA1, 300.0, 3.0), requests(5), "5/s"),
        day_row("GC pause 3 s every 5 min", Pauses(HEALTHY, 300.0, 3.0), PROBE_3S, "probe 1/s"),
        day_row(
            "brownout: 15 s of 20% at 3 s, hourly",
            Episodes(SIGMA1, SLOW_3S, every=3600.0, length=15.0, share=0.2),
            requests(5),
            "requests 5/s",
            target=False,  # a real, short incident: the last minute's p95 is above 2 s
        ),
        day_row("healthy, 0.5% errors", HEALTHY, PROBE_3S, "probe 1/s"),
    ],
)

DETECTION = Table(
    "Detection of a bad release (median and 90th percentile over the seeds)",
    [
        detect_row("hard down: connection refused", REFUSING, PROBE_3S, "probe 1/s", median=2.5),
        detect_row("hang (3 s timeout)", HANGING, PROBE_3S, "probe 1/s", median=5.0),
        detect_row("latency 50 ms -> 3 s", SLOW_3S, PROBE_5S, "probe 1/s, 5 s", median=8.0),
        detect_row(
            "5% errors", Lognormal(errors=0.05), requests(20), "20/s", median=40.0, p90=60.0
        ),
        detect_row("100% errors (503)", DOWN_503, requests(20), "requests 20/s"),
        detect_row("20% errors", Lognormal(errors=0.2), PROBE_3S, "probe 1/s"),
        detect_row("20% errors", Lognormal(errors=0.2), requests(20), "requests 20/s"),
        detect_row("5% errors", Lognormal(errors=0.05), scrape(20), "scrape 20/s, 15 s"),
        detect_row("latency 50 ms -> 3 s", SLOW_3S, scrape(5), "scrape 5/s, 15 s"),
        detect_row("p95 1.6 s -> 2.4 s", heavy_tail(1.0, 2.4), requests(5), "5/s", before=SIGMA1),
        detect_row(
            "one replica of three returns 503",
            Replicas((HEALTHY, HEALTHY, DOWN_503)),
            requests(20),
            "requests 20/s",
        ),
        detect_row(
            "one replica of three takes 3 s",
            Replicas((HEALTHY, HEALTHY, SLOW_3S)),
            requests(5),
            "requests 5/s",
        ),
    ],
)

WARM = Step(Lognormal(2.5, 0.2, 0.0), Lognormal(0.1, 0.5, 0.0), 20.0)

DEPLOYS = Table(
    "Deploys of a release baking 5 minutes from empty windows",
    [
        deploy_row("healthy, true p95 1.6 s, sigma 1", SIGMA1, requests(5), "requests 5/s"),
        deploy_row("healthy, true p95 1.6 s, sigma 1.5", SIGMA15, requests(5), "requests 5/s"),
        deploy_row("healthy, true p95 1.6 s, sigma 1", SIGMA1, PROBE, "probe 1/s", deploys=200),
        deploy_row("healthy, true p95 1.6 s, sigma 1.5", SIGMA15, PROBE, "probe 1/s", deploys=200),
        deploy_row(
            "warm-up 2.5 s for 20 s, warmup: 30s",
            WARM,
            requests(5),
            "5/s",
            warmup=30.0,
            deploys=200,
        ),
        deploy_row(
            "warm-up 2.5 s for 20 s, warmup: 30s",
            WARM,
            PROBE,
            "probe 1/s",
            warmup=30.0,
            deploys=200,
        ),
        deploy_row(
            "warm-up 2.5 s for 20 s, no warmup", WARM, requests(5), "5/s", deploys=100, target=False
        ),
    ],
)

TABLES: list[Table] = [DETECTION, DEPLOYS, HEALTHY_DAYS]


# --- running ---------------------------------------------------------------------------


def _call(job: Callable[[], Any]) -> Any:
    return job()


def run_tables(
    tables: Sequence[Table], *, full: bool = True, workers: int | None = None
) -> list[tuple[str, list[tuple[Row, tuple[str, str, bool | None]]]]]:
    """Run every row's jobs over ``workers`` processes; return each table's summaries."""
    scale = 1 if full else 0
    plan = [(table, row, row.jobs(scale)) for table in tables for row in table.rows]
    # Longest first, so that a 24 h run does not start last on an idle pool.
    flat = [(i, job) for i, (_, _, jobs) in enumerate(plan) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [(i, pool.submit(_call, job)) for i, job in flat]
        results: dict[int, list[Any]] = {}
        for i, future in futures:
            results.setdefault(i, []).append(future.result())
    out: list[tuple[str, list[tuple[Row, tuple[str, str, bool | None]]]]] = []
    for i, (table, row, _) in enumerate(plan):
        if not out or out[-1][0] != table.title:
            out.append((table.title, []))
        out[-1][1].append((row, row.summary(results.get(i, []))))
    return out


def _print(title: str, lines: list[tuple[Row, tuple[str, str, bool | None]]]) -> None:
    header = ("scenario", "feed", "result", "target", "status")
    table = [header] + [
        (row.name, row.feed_name, text, target, "-" if ok is None else ("PASS" if ok else "FAIL"))
        for row, (text, target, ok) in lines
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    print(f"\n### {title}\n")
    for n, line in enumerate(table):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 h days, 10 seeds, 20 deploys")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = []
    for table in TABLES:  # one at a time, printed as it ends: a long run shows progress
        done = run_tables([table], full=not args.quick, workers=args.workers)
        for title, lines in done:
            _print(title, lines)
            print(f"({time.monotonic() - started:.0f} s)", flush=True)
        results.extend(done)
    gates = ", ".join(f"{g.metric} > {g.above:g}" for g in gates_for(PROBE))
    print(
        f"\ngates: {gates} (schema defaults otherwise); window 300 s; "
        f"wall time {time.monotonic() - started:.0f} s on {args.workers} processes"
    )
    failed = [row.name for _, lines in results for row, (_, _, ok) in lines if ok is False]
    baseline_ok = _baseline_rows(quick=args.quick)
    return 1 if failed or not baseline_ok else 0


def _baseline_rows(*, quick: bool) -> bool:
    """Hook: the baseline-vs-absolute table of benchmarks/baseline_sim.py (issue #15)."""
    import baseline_sim  # noqa: PLC0415 - a sibling script, on sys.path when run as one

    print()
    if quick:
        return baseline_sim.report(seeds=range(1, 11), hours=1.0)
    return baseline_sim.report()


if __name__ == "__main__":
    raise SystemExit(main())
