"""Baseline gates against absolute gates on the same simulated canary traffic
(``baseline_traffic``: the traffic model and how the gates are fed), as one table.

``python benchmarks/decision_sim.py`` prints this table after its own (``report`` is the
hook); ``python benchmarks/baseline_sim.py`` prints it alone.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass

from baseline_traffic import (
    ERRORS,
    HEALTHY,
    HORIZON,
    LATENCY,
    WINDOW,
    Release,
    Run,
    simulate,
)

__all__ = ["QUIET_SEEDS", "SEEDS", "report"]

SEEDS = range(1, 101)
#: Seeds of the quiet rows (24 h each) per request rate: a day at 100 requests/s costs about
#: 20 s of CPU, at 10 requests/s about 1 s.
QUIET_SEEDS: dict[float, Sequence[int]] = {10: range(1, 21), 100: range(1, 3)}


@dataclass(frozen=True)
class _Case:
    name: str
    rate: float
    green_share: float
    green: Release
    target: float | None  # seconds (median) for detections, triggers for quiet runs
    window: int = WINDOW


def _quiet_cases() -> list[_Case]:
    return [
        _Case("false triggers, same release", rate, share, HEALTHY, 0.0)
        for rate in (10, 100)
        for share in (0.05, 0.25, 0.5)
    ]


def _detection_cases() -> list[_Case]:
    errors = Release(error_rate=0.009)
    slower = Release(latency_median=HEALTHY.latency_median * 1.5)
    return [
        _Case("errors 0.3% -> 0.9%", 100, 0.5, errors, 300.0),
        _Case("errors 0.3% -> 0.9%", 100, 0.25, errors, None),
        _Case("errors 0.3% -> 0.9%", 100, 0.05, errors, None),
        _Case("errors 0.3% -> 0.9%, 15 min window", 100, 0.05, errors, None, 900),
        _Case("errors 0.3% -> 0.9%", 10, 0.5, errors, None),
        _Case("latency p95 x1.5 (400 -> 600 ms)", 100, 0.5, slower, 120.0),
        _Case("latency p95 x1.5 (400 -> 600 ms)", 100, 0.25, slower, None),
        _Case("latency p95 x1.5 (400 -> 600 ms)", 100, 0.05, slower, None),
        _Case("latency p95 x1.5 (400 -> 600 ms)", 10, 0.5, slower, None),
    ]


def _quiet(case: _Case, seed: int, hours: float, absolute: bool) -> Run:
    seconds = round(hours * 3600)
    return simulate(
        case.rate,
        case.green_share,
        case.green,
        seconds,
        seed,
        window=case.window,
        absolute=absolute,
    )


def _detect(case: _Case, seed: int, absolute: bool) -> Run:
    return simulate(
        case.rate,
        case.green_share,
        case.green,
        HORIZON,
        seed,
        window=case.window,
        stop_at_detection=True,
        absolute=absolute,
    )


def _times(times: Sequence[int | None]) -> tuple[str, float]:
    caught = sorted(t for t in times if t is not None)
    median = statistics.median(math.inf if t is None else t for t in times)
    if not caught:
        return f"missed in {HORIZON} s", median
    p90 = sorted(math.inf if t is None else t for t in times)[math.ceil(0.9 * len(times)) - 1]
    text = f"median {_seconds(median)}, p90 {_seconds(p90)}"
    if len(caught) < len(times):
        text += f", {len(times) - len(caught)} missed"
    return text, median


def _seconds(value: float) -> str:
    return f"> {HORIZON} s" if math.isinf(value) else f"{value:g} s"


def report(
    pool: Executor | None = None,
    seeds: Sequence[int] = SEEDS,
    hours: float = 24.0,
    *,
    rate: float | None = None,
    green_share: float | None = None,
    absolute: bool = True,
    quiet_seeds: dict[float, Sequence[int]] | None = None,
) -> bool:
    """Print the side-by-side table; True when every target is met. ``rate`` and
    ``green_share`` keep only the matching rows; ``absolute`` False leaves that column out;
    ``quiet_seeds`` maps a request rate to the seeds of its quiet rows (default ``seeds``):
    a day at 100 requests/s costs about 20 s of CPU per seed."""
    own = pool is None
    executor = pool or ProcessPoolExecutor()

    def wanted(case: _Case) -> bool:
        return (rate is None or case.rate == rate) and (
            green_share is None or case.green_share == green_share
        )

    try:
        quiet = {
            case: [
                executor.submit(_quiet, case, seed, hours, absolute)
                for seed in (quiet_seeds or {}).get(case.rate, seeds)
            ]
            for case in _quiet_cases()
            if wanted(case)
        }
        detect = {
            case: [executor.submit(_detect, case, seed, absolute) for seed in seeds]
            for case in _detection_cases()
            if wanted(case)
        }
        rows: list[tuple[str, ...]] = []
        passed = True
        for case, jobs in quiet.items():
            runs = [job.result() for job in jobs]
            base = sum(r.baseline_triggers for r in runs)
            base_text = f"{base} in {len(runs)} x {hours:g} h"
            if base:
                by_rate = sum(r.rate_triggers for r in runs)
                by_latency = sum(r.latency_triggers for r in runs)
                base_text += f" (errors {by_rate}, latency {by_latency})"
            absolute_triggers = sum(r.absolute_triggers for r in runs)
            ok = base == 0
            passed &= ok
            rows.append(
                _row(
                    case,
                    base=base_text,
                    absolute=f"{absolute_triggers} in {len(runs)} x {hours:g} h"
                    if absolute
                    else "not run",
                    target="0",
                    ok=ok,
                    n=len(runs),
                )
            )
        for case, jobs in detect.items():
            runs = [job.result() for job in jobs]
            base_text, median = _times([r.baseline_detected for r in runs])
            absolute_text = (
                _times([r.absolute_detected for r in runs])[0] if absolute else "not run"
            )
            met = None if case.target is None else median <= case.target
            passed &= met is not False
            target = "-" if case.target is None else f"median <= {case.target:g} s"
            rows.append(
                _row(
                    case, base=base_text, absolute=absolute_text, target=target, ok=met, n=len(runs)
                )
            )
    finally:
        if own:
            executor.shutdown()
    _print(rows)
    return passed


def _row(
    case: _Case, *, base: str, absolute: str, target: str, ok: bool | None, n: int
) -> tuple[str, ...]:
    status = "-" if ok is None else ("PASS" if ok else "FAIL")
    share = f"{case.green_share:.0%}"
    return (case.name, f"{case.rate:g}", share, f"{n}", base, absolute, target, status)


def _print(rows: Sequence[tuple[str, ...]]) -> None:
    header = ("baseline vs absolute", "req/s", "green", "seeds", "baseline gates",
              "absolute gates", "target (baseline)", "status")  # fmt: skip
    table = [header, *rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for n, line in enumerate(table):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(
        f"\nbaseline: {ERRORS.metric} tolerance {ERRORS.margin - 1:.0%}, {LATENCY.metric}"
        f" tolerance {LATENCY.margin - 1:.0%}, confidence {ERRORS.confidence}, min_samples"
        f" {ERRORS.min_samples}, min_errors {ERRORS.min_errors}; absolute: error_rate > 1 %,"
        f" latency_p95 > 2 s (core defaults); window {WINDOW} s per colour, empty at the"
        " canary's start; healthy 0.3 % errors, latency lognormal median 150 ms, sigma 0.6"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds per row")
    parser.add_argument("--hours", type=float, default=24.0, help="per seed, quiet rows")
    parser.add_argument("--rate", type=float, help="only the rows at this total request rate")
    parser.add_argument("--green", type=float, help="only the rows with this green share (0.5)")
    parser.add_argument("--no-absolute", action="store_true", help="baseline gates only")
    parser.add_argument(
        "--quiet-seeds",
        type=int,
        help="seeds per quiet row (default: QUIET_SEEDS, 20 at 10/s and 2 at 100/s)",
    )
    parser.add_argument("--workers", type=int, default=None, help="worker processes")
    args = parser.parse_args()
    quiet: dict[float, Sequence[int]] = (
        QUIET_SEEDS
        if args.quiet_seeds is None
        else {rate: range(1, args.quiet_seeds + 1) for rate in QUIET_SEEDS}
    )
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        passed = report(
            pool,
            seeds=range(1, args.seeds + 1),
            hours=args.hours,
            rate=args.rate,
            green_share=args.green,
            absolute=not args.no_absolute,
            quiet_seeds=quiet,
        )
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
