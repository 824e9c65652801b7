"""How long a healthy canary takes at 1, 10 and 100 requests/s: the steps' own rule, measured.

Each step of a canary ends when ``core.deploy_plan.step_verdict`` says so: its ``for`` has
passed, green served ``min_requests`` requests in it, and every gate of green is ``ok``, which
needs each gate's minimum of evidence (``min_samples`` of green; for a baseline gate, blue's
too, and for a latency baseline ``MIN_REFERENCE_TAIL`` blue samples above blue's quantile).
This drives the daemon's own ``TrafficJudge`` and ``step_verdict`` with Poisson traffic of a
healthy release (0.3 % errors, lognormal latency around 150 ms, green and blue alike), one
evaluation a second, and reports per step the median and 90th percentile of the time the step
took, over ``--seeds`` seeds.

    python benchmarks/canary_duration.py [--seeds 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watchdogd.config.traffic import TrafficConfig
from watchdogd.config.validation import parse
from watchdogd.core.deploy_plan import Step, step_verdict
from watchdogd.deploy.windows import (
    ServerTraffic,
    TrafficJudge,
    TrafficWindows,
    pending,
)

TRAFFIC = parse(
    TrafficConfig,
    {
        "haproxy": {"socket": "/run/haproxy.sock", "backend": "app"},
        "upstream": {"port": 8080},
        "strategy": "canary",
        "steps": [
            {"weight": "5%", "for": "2m"},
            {"weight": "25%", "for": "2m"},
            {"weight": "50%", "for": "5m"},
        ],
        "gates": [
            {"metric": "error_rate", "above": "1%"},
            {"metric": "latency_p95", "above": "2s"},
            {"metric": "error_rate", "compare": "baseline", "tolerance": "50%"},
            {"metric": "latency_p95", "compare": "baseline", "tolerance": "20%"},
        ],
    },
)
RATES = (1.0, 10.0, 100.0)
LIMIT = 4 * 3600  # a step that has not ended after 4 h is reported as such


def _feed(
    rng: random.Random, windows: TrafficWindows, server: str, now: float, rate: float
) -> None:
    traffic = windows.get("app", server)
    assert traffic is not None
    for _ in range(_poisson(rng, rate)):
        ok = rng.random() >= 0.003
        windows(
            "app", server, now + rng.random(), 200 if ok else 503, 0.15 * rng.lognormvariate(0, 0.6)
        )


def _poisson(rng: random.Random, mean: float) -> int:
    count, total = 0, rng.expovariate(1.0)
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count


def step_seconds(seed: int, rate: float, step: Step) -> int:
    """Seconds until a healthy green leaves ``step`` at ``rate`` requests/s in total."""
    rng = random.Random(seed)
    windows = TrafficWindows()
    thresholds, span = TRAFFIC.latency_thresholds, TRAFFIC.window
    green: ServerTraffic = windows.watch("app", "green", thresholds, span)
    blue: ServerTraffic = windows.watch("app", "blue", thresholds, span)
    judge = TrafficJudge(TRAFFIC.gates)
    share = step.weight / 100
    for second in range(LIMIT):
        _feed(rng, windows, "green", float(second), rate * share)
        _feed(rng, windows, "blue", float(second), rate * (1 - share))
        now = second + 1.0
        results = judge.evaluate(green, now, blue if share < 1 else None)
        ready, _why = step_verdict(
            step=step,
            elapsed=now,
            verdicts={r.gate: r.verdict for r in results},
            reasons={},
            strict=True,
            requests=green.requests,
            min_requests=TRAFFIC.min_requests,
            breach_pending=pending(results),
        )
        if ready:
            return second + 1
    return LIMIT


def _clock(seconds: float) -> str:
    if seconds >= LIMIT:
        return "> 4 h"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args(argv)
    plan = TRAFFIC.plan(bake_time=0)
    header = ["requests/s", *(f"step {s.weight} % ({_clock(s.duration)})" for s in plan)]
    print("| " + " | ".join([*header, "whole canary"]) + " |")
    print("|" + "---|" * (len(header) + 1))
    for rate in RATES:
        cells, total_medians = [], 0.0
        for step in plan:
            times = sorted(step_seconds(seed, rate, step) for seed in range(args.seeds))
            median = statistics.median(times)
            p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
            total_medians += median
            cells.append(f"{_clock(median)} (p90 {_clock(p90)})")
        print(f"| {rate:g} | " + " | ".join(cells) + f" | {_clock(total_medians)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
