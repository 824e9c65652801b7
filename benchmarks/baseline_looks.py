"""Which baseline test fires on identical releases, and what other rules would do.

``python benchmarks/baseline_looks.py quiet 0.5`` runs the traffic of
``benchmarks/baseline_sim.py`` (same colours, same seeds) with green and blue the same
release, and evaluates several rules on it at once: the error-rate test at 99.5 %, 99.9 % and
99.99 %, the error-rate test at 99.5 % held for 80 % of 60 s (as an absolute gate's ``for:``),
and the latency test at its default. ``errors 0.5`` runs tripled errors on green instead and
prints each rule's time to detect. docs/canary.md ("Repeated looks") has the figures.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from baseline_traffic import HEALTHY, HORIZON, WINDOW, Release, _Colour, _latency_breached

from watchdogd.core.stats import ratio_margin_z, z_for

RATE = 100
MARGIN = 1.5
MIN_ERRORS = 20
HOLD = 60  # seconds; breached for 80 % of them, as core.gates.Hold
RULES = ("99.5%", "99.9%", "99.99%", "99.5% for 60s", "latency")
_LIMITS = {"99.5%": z_for(0.995), "99.9%": z_for(0.999), "99.99%": z_for(0.9999)}


@dataclass(frozen=True)
class Looks:
    """Per rule: transitions into a breach and the first one; the largest error-rate z."""

    triggers: dict[str, int]
    first: dict[str, int | None]
    max_z: float


def run(
    share: float, green: Release, seconds: int, seed: int, stop: bool, *, latency: bool = True
) -> Looks:
    """Evaluate every rule once a second on one seeded run. ``latency`` False draws no
    latencies (ten times faster; the seeds then give other error streams than the sim's)."""
    rng = random.Random(seed)
    g = _Colour(RATE * share, green, rng, WINDOW)
    b = _Colour(RATE * (1.0 - share), HEALTHY, rng, WINDOW)
    if not latency:
        g.next_slow = b.next_slow = 1 << 62  # never: no latency is drawn
    was = dict.fromkeys(RULES, False)
    triggers = dict.fromkeys(RULES, 0)
    first: dict[str, int | None] = dict.fromkeys(RULES)
    held: deque[bool] = deque(maxlen=HOLD)
    counts: tuple[int, ...] = ()
    z = max_z = -math.inf
    for now in range(1, seconds + 1):
        g.second()
        b.second()
        if g.errors >= MIN_ERRORS:
            if (g.count, g.errors, b.count, b.errors) != counts:  # z changes only with these
                counts = (g.count, g.errors, b.count, b.errors)
                z = ratio_margin_z(g.errors, g.count, b.errors, b.count, MARGIN)
        else:
            z = -math.inf
        max_z = max(max_z, z)
        state = {rule: z > limit for rule, limit in _LIMITS.items()}
        held.append(state["99.5%"])
        state["99.5% for 60s"] = len(held) == HOLD and sum(held) >= 0.8 * HOLD
        state["latency"] = latency and _latency_breached(g, b)
        for rule in RULES:
            if state[rule] and not was[rule]:
                triggers[rule] += 1
                first[rule] = first[rule] or now
            was[rule] = state[rule]
        if stop and all(first[rule] is not None for rule in RULES[:4]):
            break
    return Looks(triggers, first, max_z)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("quiet", "errors"))
    parser.add_argument("green", type=float, help="green's share of the traffic, e.g. 0.5")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--hours", type=float, default=24.0, help="per seed, quiet mode")
    parser.add_argument("--errors-only", action="store_true", help="no latency test (faster)")
    args = parser.parse_args()
    quiet = args.mode == "quiet"
    green = HEALTHY if quiet else Release(error_rate=0.009)
    seconds = round(args.hours * 3600) if quiet else HORIZON
    seeds = range(1, args.seeds + 1)
    with ProcessPoolExecutor(2) as pool:
        jobs = [
            pool.submit(
                run, args.green, green, seconds, seed, not quiet, latency=not args.errors_only
            )
            for seed in seeds
        ]
        results = [job.result() for job in jobs]
    for rule in RULES[:4] if args.errors_only else RULES:
        if quiet:
            total = sum(r.triggers[rule] for r in results)
            print(f"{rule}: {total} false triggers in {len(results)} x {args.hours:g} h")
        else:
            times = [r.first[rule] for r in results]
            ordered = sorted(math.inf if t is None else t for t in times)
            p90 = ordered[math.ceil(0.9 * len(ordered)) - 1]
            print(f"{rule}: median {statistics.median(ordered):g} s, p90 {p90:g} s")
    if quiet:
        top = [r.max_z for r in results]
        median, most = statistics.median(top), max(top)
        print(f"largest error-rate z per seed: median {median:.2f}, max {most:.2f}")


if __name__ == "__main__":
    main()
