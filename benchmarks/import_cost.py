"""What each import costs ``watchdogd run``: resident memory and CPU, in the order it loads them.

Method. A fresh interpreter (this venv's, as the daemon runs) imports the groups of ``STEPS``
one after the other and reads its resident memory (``/proc/self/statm``) and its CPU time
(``time.process_time``) before and after each: a row is what that group adds given the rows
above it (a module two groups share counts for the first). The child runs in the shipped
unit's environment (``PYTHONOPTIMIZE=2``, ``shipped_env.py``), and one unmeasured child first
writes the bytecode, as the unit's first start does. The run is repeated ``--runs`` times
(default 5), each in a new interpreter, and every figure is the median. The child imports
aiohttp with frozenlist's pure-Python FrozenList, as ``watchdogd run`` does. Memory is exact
to a page and does not move with the machine's load; CPU time does, a little (the machine is
shared), hence the median.

``OPTIONAL`` groups are what a daemon loads only when its config uses them; each is measured
on top of the whole daemon, in its own interpreter.

``--importtime`` also runs ``python -X importtime`` over the daemon's imports ``--runs`` times
and prints the median self time (wall time) summed per top-level package: the same costs
seen from the import system's side.

    .venv/bin/python benchmarks/import_cost.py [--runs N] [--importtime]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict

from shipped_env import daemon_environment

# (label, modules): the daemon's own order at start-up (``watchdogd run``, idle config).
STEPS: list[tuple[str, list[str]]] = [
    ("`hashlib` (loads OpenSSL's libcrypto)", ["hashlib"]),
    ("`ssl` (libssl, the `_ssl` module)", ["ssl"]),
    ("`asyncio`", ["asyncio"]),
    (
        "`aiohttp` client, with yarl, multidict, attrs, `email`; its import makes two "
        "SSL contexts, loading the system's CA bundle twice",
        ["aiohttp"],
    ),
    ("`aiohttp.web` (the API server)", ["aiohttp.web"]),
    ("`structlog`", ["structlog"]),
    (
        "`prometheus_client` (its exposition module loads `http.server`, `wsgiref`, `ssl`)",
        ["prometheus_client"],
    ),
    ("`sqlite3`", ["sqlite3"]),
    ("watchdogd's pure decisions (`watchdogd.core`)", ["watchdogd.core.gates", "watchdogd.core"]),
    (
        "the config classes: plain frozen dataclasses, with `annotated_types` (`watchdogd.config`)",
        ["watchdogd.config"],
    ),
    (
        "the rest of watchdogd (store, the HTTP probe, watch, playbook, metrics, api, daemon)",
        ["watchdogd.daemon.lifecycle", "watchdogd.cli", "watchdogd.sources.http"],
    ),
]


DAEMON_MODULES = ("watchdogd.daemon.lifecycle", "watchdogd.cli", "watchdogd.sources.http")
# As the shipped unit runs the daemon (PYTHONOPTIMIZE=2, benchmarks/shipped_env.py), and as
# `watchdogd run` imports aiohttp (watchdogd/cli.py): with the pure-Python FrozenList.
DAEMON_ENV = daemon_environment(os.environ) | {"FROZENLIST_NO_EXTENSIONS": "1"}

OPTIONAL: list[tuple[str, list[str]]] = [
    (
        "the deploy manager and its HAProxy code (a target with `traffic:`)",
        ["watchdogd.deploy.manager"],
    ),
    (
        "the `scrape`, `auth_flow` and `promql` checks' sources",
        ["watchdogd.sources.scrape", "watchdogd.sources.auth_flow", "watchdogd.sources.promql"],
    ),
    ("Docker SDK (with `requests`, `urllib3`)", ["docker"]),
    ("`httpx` (the command line's client)", ["httpx"]),
    ("`redis`", ["redis"]),
    ("`psycopg`", ["psycopg"]),
    ("Apprise", ["apprise"]),
    ("`sqlparse`", ["sqlparse"]),
    ("`tenacity` (a playbook step's retries: loaded by the first incident)", ["tenacity"]),
    (
        "pydantic and the webhook's payload models (loaded by the first Alertmanager delivery)",
        ["watchdogd.api.alertmanager"],
    ),
]

#: What the config check's child process (``config.check_process``) imports on top of the
#: interpreter: it exits once the config is handed back, so none of it stays in the daemon.
CHECK_PROCESS: list[tuple[str, list[str]]] = [
    ("`yaml`", ["yaml"]),
    ("`pydantic`, its model machinery and the loader", ["watchdogd.config.loader"]),
]

# Runs in the child: imports ``groups`` (JSON argv[1]) in order, prints one JSON line per group.
CHILD = """
import importlib, json, os, sys, time
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 1e6
out = [{"rss": rss(), "cpu": time.process_time(), "modules": len(sys.modules)}]
for modules in json.loads(sys.argv[1]):
    for name in modules:
        importlib.import_module(name)
    out.append({"rss": rss(), "cpu": time.process_time(), "modules": len(sys.modules)})
print(json.dumps(out))
"""


def run_child(groups: list[list[str]]) -> list[dict[str, float]]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(groups)],
        capture_output=True,
        text=True,
        check=True,
        env=DAEMON_ENV,
    )
    points: list[dict[str, float]] = json.loads(done.stdout.splitlines()[-1])
    return points


def deltas(points: list[dict[str, float]]) -> list[tuple[float, float, float]]:
    """(MB, ms, modules) each group added."""
    return [
        (
            after["rss"] - before["rss"],
            (after["cpu"] - before["cpu"]) * 1000,
            after["modules"] - before["modules"],
        )
        for before, after in itertools.pairwise(points)
    ]


def median_rows(runs: list[list[tuple[float, float, float]]]) -> list[tuple[float, float, float]]:
    return [
        tuple(statistics.median(run[i][k] for run in runs) for k in range(3))  # type: ignore[misc]
        for i in range(len(runs[0]))
    ]


def measure(runs: int) -> None:
    daemon = [modules for _, modules in STEPS]
    # As installed: the unit's first start writes the bytecode that later starts read.
    run_child([*daemon, *(m for _, m in OPTIONAL), *(m for _, m in CHECK_PROCESS)])
    start: list[float] = []
    total: list[float] = []
    per_run = []
    for _ in range(runs):
        points = run_child(daemon)
        start.append(points[0]["rss"])
        total.append(points[-1]["rss"])
        per_run.append(deltas(points))
    rows = median_rows(per_run)
    print("| import | memory | CPU | modules |\n|---|---|---|---|")
    interpreter = statistics.median(start)
    print(f"| the interpreter itself (with `site` and `json`) | {interpreter:.1f} MB | | |")
    for (label, _), (mb, ms, count) in zip(STEPS, rows, strict=True):
        print(f"| {label} | {mb:.1f} MB | {ms:.0f} ms | {count:.0f} |")
    print(
        f"| **all of the daemon's imports** | **{statistics.median(total):.1f} MB** | "
        f"**{sum(r[1] for r in rows):.0f} ms** | |"
    )
    print("\nLoaded only when a config uses them, each on top of all of the above:\n")
    print("| import | memory | CPU | modules |\n|---|---|---|---|")
    for label, modules in OPTIONAL:
        extra = [deltas(run_child([*daemon, modules]))[-1] for _ in range(max(1, runs // 2))]
        mb, ms, count = median_rows([[e] for e in extra])[0]
        print(f"| {label} | {mb:.1f} MB | {ms:.0f} ms | {count:.0f} |")
    print("\nThe config check's child process, in its own interpreter:\n")
    print("| import | memory | CPU | modules |\n|---|---|---|---|")
    child = [median_rows([deltas(run_child([m for _, m in CHECK_PROCESS])) for _ in range(runs)])]
    for (label, _), (mb, ms, count) in zip(CHECK_PROCESS, child[0], strict=True):
        print(f"| {label} | {mb:.1f} MB | {ms:.0f} ms | {count:.0f} |")


def importtime(runs: int) -> None:
    """Self time summed per top-level package, median of ``runs`` interpreters."""
    per_package: dict[str, list[int]] = defaultdict(list)
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {', '.join(DAEMON_MODULES)}"],
            capture_output=True,
            text=True,
            check=True,
            env=DAEMON_ENV,
        )
        totals: dict[str, int] = defaultdict(int)
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, _, name = line.removeprefix("import time:").split("|")
            totals[name.strip().split(".")[0]] += int(self_us)
        for name, micros in totals.items():
            per_package[name].append(micros)
    medians = {name: statistics.median(values) for name, values in per_package.items()}
    print(f"\n`-X importtime`, self wall time per top-level package, median of {runs} (ms):\n")
    for name, micros in sorted(medians.items(), key=lambda kv: -kv[1])[:15]:
        print(f"- {name}: {micros / 1000:.0f}")
    print(f"- everything: {sum(medians.values()) / 1000:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    measure(args.runs)
    if args.importtime:
        importtime(args.runs)


if __name__ == "__main__":
    main()
