"""The soak's report: events by kind, incidents, detection and restore times, the invariant
table, and, on a violation, the seed and the event history that led to it."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from soak_invariants import History, Observed, Verdict, check, table


def report(
    seed: int,
    history: History,
    observed: Observed,
    *,
    counts: Counter[str],
    events: Sequence[dict[str, Any]],
    load: tuple[int, int],
    extra: Sequence[Verdict] = (),
    workdir: Path,
) -> int:
    """Print the report; 0 without a violation, else 1."""
    verdicts, timings = check(history, observed)
    verdicts += list(extra)
    print("\nEvents by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    print(f"Client requests: {load[0]}, failed {load[1]}")
    print(
        f"Incidents: {len(observed.incidents)} "
        + str(dict(Counter(f"{i.trigger_kind}/{i.state}" for i in observed.incidents)))
    )
    by_fault: dict[str, list[float]] = {}
    for timing in timings:
        by_fault.setdefault(timing.label.split("-")[1], []).append(timing.detect)
    for fault, seconds in sorted(by_fault.items()):
        print(
            f"Detection of {fault}: {len(seconds)} deploys, median "
            f"{statistics.median(seconds):.2f} s, worst {max(seconds):.2f} s"
        )
    if timings:
        worst_detect = max(timings, key=lambda t: t.detect)
        restores = [t for t in timings if t.restore is not None]
        print(f"Worst detection: {worst_detect.detect:.2f} s ({worst_detect.label})")
        if restores:
            worst = max(restores, key=lambda t: t.restore or 0.0)
            print(f"Worst restore (deploy to incident end): {worst.restore:.2f} s ({worst.label})")
    print("\n" + table(verdicts))
    bad = [v for v in verdicts if not v.ok]
    if not bad:
        print(f"\n0 violations (seed {seed}); work directory {workdir}")
        return 0
    print(f"\nVIOLATIONS (replay: python benchmarks/soak.py --seed {seed} ...):")
    for verdict in bad:
        for violation in verdict.violations:
            print(f"  {verdict.name}: {violation}")
    print("\nEvent history:")
    for event in events:
        print("  " + json.dumps(event))
    print(f"Work directory (daemon logs, store): {workdir}")
    return 1
