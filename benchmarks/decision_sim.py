"""Decision-quality simulation: how often the default gates cry wolf, and how fast they see one.

Run it as ``python benchmarks/decision_sim.py`` (``--quick`` for a short smoke run). It drives
the daemon's own core (``sim_engine``: ``CheckRecorder``, ``Gate(GateConfig().spec())``,
``ScrapeSource.ingest``, the 1 s tick at a random phase plus evaluation on evidence) with the
traffic shapes of ``sim_shapes`` and prints one table per kind of question:

* **false triggers**: transitions into BREACHED over 24 simulated hours of a healthy shape
  (per seed; reported per 24 h as well);
* **detection**: a step to a bad release after ten healthy minutes (the window is full of good
  samples); time from the step to the first BREACHED, median and 90th percentile over the
  seeds, each seed with its own probe phase, tick phase and traffic;
* **deploys**: a fresh release baking for 5 minutes from empty windows; how many are rolled back;
* **HAProxy's log**: green judged on its per-request log, through the log receiver into the
  deploy's traffic window and gates (``sim_haproxy``), with lines dropped.

``--tables`` and ``--rows`` run a part; the rows are built in ``sim_rows``.

Every row with a target says PASS or FAIL; the exit code is 1 when one fails. Rows are plain
data in ``TABLES``: a new question is a new table (or a new row), nothing else changes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_engine import Feed, gates_for, simulate
from sim_rows import (
    HEALTHY,
    PROBE,
    PROBE_3S,
    PROBE_5S,
    Row,
    Table,
    day_row,
    deploy_row,
    detect_row,
    diurnal,
    log,
    requests,
    scrape,
)
from sim_shapes import (
    HANGING,
    REFUSING,
    Diurnal,
    Drift,
    Episodes,
    Fixed,
    Lognormal,
    Mix,
    Pauses,
    Replicas,
    Step,
    heavy_tail,
)

__all__ = ["TABLES", "Table", "main", "run_tables", "simulate"]

# --- the tables ------------------------------------------------------------------------


SIGMA1, SIGMA15 = heavy_tail(1.0), heavy_tail(1.5)
DOWN_503 = Fixed(False, 0.01)
BURSTS = Episodes(Lognormal(errors=0.002), DOWN_503, every=900.0, length=0.5)
BLIPS = Episodes(HEALTHY, DOWN_503, every=900.0, length=1.0)
SLOW_3S = Lognormal(3.0, 0.1)
GC_19 = Episodes(HEALTHY, Fixed(True, 1.9), every=120.0, length=1.5)
GC_25 = Episodes(HEALTHY, Fixed(True, 2.5), every=120.0, length=1.4)
SLOW_CLIENTS = Mix(HEALTHY, Lognormal(2.55, 0.08, 0.005), 0.04)  # 2.2-3 s, all above 2 s
CACHE = Mix(Lognormal(0.02, 0.3, 0.005), Lognormal(1.9, 0.3, 0.005), 0.10)
RESETS = Feed("scrape", rate=20.0, interval=15.0, resets=3600.0)
DIURNAL = Diurnal(0.5, 50.0)
NIGHT_ZERO = Diurnal(0.0, 50.0, night_zero=True)

HEALTHY_DAYS = Table(
    "False triggers of healthy releases (hours simulated per row as shown)",
    [
        day_row("heavy tail sigma 1, true p95 1.6 s", SIGMA1, requests(5), "5/s"),
        day_row("heavy tail sigma 1.5, true p95 1.6 s", SIGMA15, requests(5), "5/s"),
        day_row("heavy tail sigma 1, true p95 1.6 s", SIGMA1, PROBE, "probe 1/s"),
        day_row("heavy tail sigma 1.5, true p95 1.6 s", SIGMA15, PROBE, "probe 1/s", days=5),
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
        # Hostile shapes of this table's own (none of them is an incident a user would want
        # rolled back): latency right under the threshold, in bursts or in a fixed share.
        day_row("GC: every 2 min, 1.5 s of 1.9 s", GC_19, requests(5), "requests 5/s"),
        day_row("GC: every 2 min, 1.5 s of 1.9 s", GC_19, PROBE_3S, "probe 1/s"),
        day_row("GC: every 2 min, 1.4 s of 2.5 s", GC_25, requests(20), "requests 20/s"),
        day_row("slow clients: 4% take 2.2-3 s", SLOW_CLIENTS, requests(5), "requests 5/s"),
        day_row("cache: 10% misses, p95 1.9 s", CACHE, requests(20), "requests 20/s"),
        day_row("cache: 10% misses, p95 1.9 s", CACHE, PROBE, "probe 1/s"),
        day_row("app restart hourly: counters reset", SIGMA1, RESETS, "scrape 20/s, 15 s"),
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

LOG_DROPS = log(100, drop=0.3)
LOG_BURSTS = log(100, drop_bursts=(60.0, 5.0))

HAPROXY_LOG = Table(
    "Green judged on HAProxy's per-request log (receiver -> TrafficWindows -> traffic gates)",
    [
        day_row("healthy, heavy tail sigma 1", SIGMA1, log(100), "log 100/s", hours=2),
        day_row("healthy, 30% of lines dropped", SIGMA1, LOG_DROPS, "log 100/s", hours=2),
        day_row("healthy, 5 s of lines lost every min", SIGMA1, LOG_BURSTS, "log 100/s", hours=2),
        deploy_row("healthy, heavy tail sigma 1", SIGMA1, log(100), "log 100/s", deploys=40),
        detect_row(
            "5% errors from the switch", Lognormal(errors=0.05), log(100), "100/s", fresh=True
        ),
        detect_row(
            "5% errors, 30% of lines dropped",
            Lognormal(errors=0.05),
            LOG_DROPS,
            "log 100/s",
            fresh=True,
        ),
        detect_row("100% errors (503)", DOWN_503, log(100), "log 100/s", fresh=True),
        detect_row(
            "latency 50 ms -> 3 s (latency_p95 > 2s)",
            SLOW_3S,
            log(100),
            "log 100/s",
            fresh=True,
            seeds=10,  # every seed runs the whole horizon: see the row's result
        ),
    ],
)

TABLES: list[Table] = [DETECTION, HEALTHY_DAYS, HAPROXY_LOG, DEPLOYS]
_NAMES = {"detection": DETECTION, "healthy": HEALTHY_DAYS, "log": HAPROXY_LOG, "deploys": DEPLOYS}


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
    parser.add_argument(
        "--tables", default=",".join(_NAMES), help=f"which tables, of {','.join(_NAMES)}"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip baseline_sim's table")
    parser.add_argument("--rows", help="only the rows whose scenario contains this text")
    args = parser.parse_args(argv)
    # The recorder logs a scrape source going down and up (app restarts): not the table's news.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    started = time.monotonic()
    results = []
    tables = [_NAMES[name] for name in args.tables.split(",")]
    if args.rows:
        tables = [Table(t.title, [r for r in t.rows if args.rows in r.name]) for t in tables]
    # One table at a time, printed as it ends: a long run shows progress.
    for table in [t for t in tables if t.rows]:
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
    baseline_ok = args.no_baseline or _baseline_rows(quick=args.quick, workers=args.workers)
    return 1 if failed or not baseline_ok else 0


def _baseline_rows(*, quick: bool, workers: int) -> bool:
    """Hook: the baseline-vs-absolute table of benchmarks/baseline_sim.py (issue #15)."""
    import baseline_sim  # noqa: PLC0415 - a sibling script, on sys.path when run as one

    print()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        if quick:
            return baseline_sim.report(pool, seeds=range(1, 11), hours=1.0)
        return baseline_sim.report(pool, quiet_seeds=baseline_sim.QUIET_SEEDS)


if __name__ == "__main__":
    raise SystemExit(main())
