"""Every benchmark in one command, one table: ``make bench`` (or ``python benchmarks/run_all.py``).

Each row gives watchdogd's figure, the same figure for a baseline measured in the same run
(a peer: blackbox_exporter, Docker Swarm; or the floor: the library or algorithm watchdogd
builds on), their ratio, the target and PASS/FAIL. The method of each benchmark is in its
module's docstring; results and the machine go to BENCHMARKS.md.

    --quick        shorter runs everywhere; MTTR with 1 run per fault instead of 5 (~6 min
                   instead of ~35 min for the whole command)
    --only a,b     run only these: windows, decisions, probe, idle, scale, webhook, mttr,
                   bluegreen
    --json PATH    also write the rows and the machine as JSON

The default runs everything at full length: MTTR is 5 faults x 5 runs x (watchdogd, Swarm).
Needs root for nothing, but the Docker engine (MTTR; a single-node swarm is created on
127.0.0.1 if none is active, and left again), ``wrk`` and ``prometheus-blackbox-exporter``
(Debian packages, see .ci/services.sh). Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from common import Row, machine, print_table


def _decisions(quick: bool) -> list[Row]:
    import decision_sim  # noqa: PLC0415 - heavy, and only when asked

    started = time.monotonic()
    code = decision_sim.main(["--quick"] if quick else [])
    return [
        Row(
            "decisions",
            "decision_sim targets (table above)",
            time.monotonic() - started,
            "s to run",
            target="all met",
            passed=code == 0,
            note="false triggers, deploys and time to detect, from benchmarks/decision_sim.py",
        )
    ]


def _bench(module: str, function: str = "run") -> Callable[[bool], list[Row]]:
    def run(quick: bool) -> list[Row]:
        rows: list[Row] = getattr(importlib.import_module(module), function)(quick)
        return rows

    return run


BENCHES: dict[str, Callable[[bool], list[Row]]] = {
    "windows": _bench("bench_windows"),
    "decisions": _decisions,
    "probe": _bench("bench_probe"),
    "idle": _bench("bench_load", "run_idle"),
    "scale": _bench("bench_load", "run_scale"),
    "webhook": _bench("bench_webhook"),
    "mttr": _bench("bench_mttr"),
    "bluegreen": _bench("bench_bluegreen"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(BENCHES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    facts = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()), flush=True)
    rows: list[Row] = []
    timings: dict[str, float] = {}
    for name in chosen:
        print(f"\n== {name}{' (quick)' if args.quick else ''}", flush=True)
        started = time.monotonic()
        try:
            rows.extend(BENCHES[name](args.quick))
        except Exception as err:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            rows.append(Row(name, f"did not run: {type(err).__name__}: {err}"[:100], None, ""))
        timings[name] = time.monotonic() - started
        print(f"   {name} took {timings[name]:.0f} s", flush=True)
    print()
    print_table(rows)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": facts,
                    "quick": args.quick,
                    "seconds": timings,
                    "rows": [row.to_dict() for row in rows],
                },
                indent=1,
            )
        )
    failed = [row for row in rows if row.passed is False or row.ours is None]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
