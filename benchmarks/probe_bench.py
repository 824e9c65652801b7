"""HTTP probe cost: watchdogd's probes against Debian's blackbox_exporter, and scheduling jitter.

Run it as ``python benchmarks/probe_bench.py`` (about a minute). It starts, as separate
processes, a minimal keep-alive HTTP server on 127.0.0.1 (raw asyncio: answering costs
microseconds, so the target is never the bottleneck) and ``prometheus-blackbox-exporter``. Then:

1. **watchdogd**: ``HttpProbe.probe_once`` through one shared ``ProbeClient``, at 1, 100 and
   1000 probes in flight. CPU is this process's own (``time.process_time``: user + system, all
   threads). Each check is one long-lived task probing back to back, as in the daemon. The
   in-flight limit is raised to 1000 so that "1000 concurrent" really is 1000 open
   connections; one more row shows 1000 checks under the daemon's default limit (256).
2. **blackbox_exporter**: the same number of probes of the same server through
   ``GET /probe?target=...&module=http_2xx``, driven from this process at the same
   concurrency. CPU is the exporter's own, from ``/proc/PID/stat`` (utime + stime), so the
   driver is not counted against it.
3. **jitter**: 1000 HTTP checks at a 1 s interval on ``run_every`` (the schedule the sources
   use) for about 10 s; jitter is how late each run started after its due time.

Targets (exit code 1 if one fails): watchdogd's CPU per probe at most 0.5x blackbox_exporter's
at every concurrency; watchdogd's cost flat from 1 to 1000 in flight (highest at most 2x the
lowest); jitter p99 at most 50 ms.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import CountingSink, LocalServers, free_port, http_check, process_cpu, wait_port

from watchdogd.sources.http import HttpProbe
from watchdogd.sources.probe_client import DEFAULT_MAX_IN_FLIGHT, open_probe_client
from watchdogd.sources.schedule import run_every

CONCURRENCY = (1, 100, 1000)
PROBES = {1: 3000, 100: 20000, 1000: 20000}  # watchdogd probes per level
BLACKBOX_PROBES = {1: 1500, 100: 5000, 1000: 5000}
JITTER_CHECKS = 1000
JITTER_SECONDS = 10.0
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"


# --------------------------------------------------------------------------- the target


def start_target() -> tuple[subprocess.Popen[str], str]:
    """The keep-alive server (``common.LocalServers``): its process and the URL to probe."""
    servers = LocalServers(1)
    return servers.proc, f"http://127.0.0.1:{servers.ports[0]}/health"


# --------------------------------------------------------------------------- watchdogd


async def watchdogd_cpu(
    url: str, concurrency: int, total: int, max_in_flight: int = 1000
) -> tuple[float, float]:
    """CPU ms and wall ms per probe with ``concurrency`` checks probing back to back."""
    sink = CountingSink()
    async with open_probe_client(max_connections=1000, max_in_flight=max_in_flight) as client:
        probes = [HttpProbe(http_check(url, i, 5.0), sink, client) for i in range(concurrency)]
        await asyncio.gather(*(p.probe_once() for p in probes))  # open the connections
        rounds = max(1, total // concurrency)

        async def worker(probe: HttpProbe) -> None:
            # One long-lived task per check, as in the daemon, each probing back to back.
            for _ in range(rounds):
                await probe.probe_once()

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(p) for p in probes))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if sink.failed:
        raise SystemExit(f"{len(sink.failed)} probes failed, e.g. {sink.failed[0]}")
    done = rounds * concurrency
    return cpu * 1000 / done, wall * 1000 / done


# --------------------------------------------------------------------------- blackbox


def start_blackbox(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = workdir / "blackbox.yml"
    config.write_text(
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"
        "    http:\n      preferred_ip_protocol: ip4\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [BLACKBOX, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "blackbox.log").open("wb"),
    )
    try:
        wait_port(port)
    except RuntimeError:
        proc.kill()
        log = (workdir / "blackbox.log").read_text()
        raise SystemExit(f"blackbox_exporter did not start: {log}") from None
    return proc, f"http://127.0.0.1:{port}"


async def blackbox_cpu(
    exporter: str, pid: int, target: str, concurrency: int, total: int
) -> tuple[float, float]:
    """The exporter's CPU ms and wall ms per probe with ``concurrency`` probes in flight."""
    params = {"target": target, "module": "http_2xx"}
    failed = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal failed
            async with session.get(f"{exporter}/probe", params=params) as response:
                body = await response.text()
                failed += "probe_success 1" not in body

        await asyncio.gather(*(one() for _ in range(concurrency)))
        rounds = max(1, total // concurrency)

        async def worker() -> None:
            for _ in range(rounds):
                await one()

        cpu, wall = process_cpu(pid), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = process_cpu(pid) - cpu, time.perf_counter() - wall
    if failed:
        raise SystemExit(f"{failed} blackbox probes failed")
    done = rounds * concurrency
    return cpu * 1000 / done, wall * 1000 / done


# --------------------------------------------------------------------------- jitter


async def jitter(url: str) -> tuple[list[float], float, int]:
    """Lateness of each run (s), the prober's CPU share of one core, and the probe count."""
    sink = CountingSink()
    lateness: list[float] = []
    async with open_probe_client() as client:
        probes = [HttpProbe(http_check(url, i, 1.0), sink, client) for i in range(JITTER_CHECKS)]

        def runner(probe: HttpProbe) -> asyncio.Task[None]:
            async def work(due: float) -> None:
                lateness.append(time.monotonic() - due)
                await probe.probe_once()

            return asyncio.create_task(run_every(1.0, work, name=probe.check.name))

        cpu = time.process_time()
        tasks = [runner(p) for p in probes]
        await asyncio.sleep(JITTER_SECONDS)
        cpu = time.process_time() - cpu
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if sink.failed:
        raise SystemExit(f"{len(sink.failed)} probes failed, e.g. {sink.failed[0]}")
    return lateness, cpu / JITTER_SECONDS, sink.ok


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# --------------------------------------------------------------------------- main


def main() -> int:
    target, url = start_target()
    workdir = Path(tempfile.mkdtemp(prefix="probe-bench-"))
    exporter = None
    try:
        ours = {c: asyncio.run(watchdogd_cpu(url, c, PROBES[c])) for c in CONCURRENCY}
        limited = watchdogd_cpu(url, 1000, PROBES[1000], DEFAULT_MAX_IN_FLIGHT)
        default_limit = asyncio.run(limited)
        theirs: dict[int, tuple[float, float]] = {}
        if Path(BLACKBOX).exists():
            exporter, exporter_url = start_blackbox(workdir)
            for c in CONCURRENCY:
                probes = blackbox_cpu(exporter_url, exporter.pid, url, c, BLACKBOX_PROBES[c])
                theirs[c] = asyncio.run(probes)
        else:
            print(f"{BLACKBOX} not found (apt-get install prometheus-blackbox-exporter)")
        lateness, cpu_share, runs = asyncio.run(jitter(url))
    finally:
        for proc in (target, exporter):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"HTTP probe CPU per probe, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(
        "| in flight | watchdogd ms/probe | blackbox_exporter ms/probe | ratio | "
        "watchdogd wall ms/probe |"
    )
    print("|---:|---:|---:|---:|---:|")
    ratios = []
    for c in CONCURRENCY:
        cpu, wall = ours[c]
        if c in theirs:
            ratio = cpu / theirs[c][0]
            ratios.append(ratio)
            print(f"| {c} | {cpu:.3f} | {theirs[c][0]:.3f} | {ratio:.2f} | {wall:.3f} |")
        else:
            print(f"| {c} | {cpu:.3f} | - | - | {wall:.3f} |")
    cpu, wall = default_limit
    print(f"| 1000 checks, default limit {DEFAULT_MAX_IN_FLIGHT} | {cpu:.3f} | | | {wall:.3f} |")
    costs = [ours[c][0] for c in CONCURRENCY]
    spread = max(costs) / min(costs)
    p50, p99 = percentile(lateness, 0.50) * 1000, percentile(lateness, 0.99) * 1000
    print(
        f"\nJitter, {JITTER_CHECKS} checks at 1 s for {JITTER_SECONDS:g} s ({runs} probes): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(lateness) * 1000:.1f} ms; "
        f"prober CPU {cpu_share * 100:.1f} % of one core"
    )
    results = {
        "watchdogd <= 0.5x blackbox_exporter CPU": bool(ratios) and max(ratios) <= 0.5,
        f"flat from 1 to 1000 in flight (max/min {spread:.2f} <= 2)": spread <= 2.0,
        f"jitter p99 {p99:.1f} ms <= 50 ms": p99 <= 50.0,
    }
    print()
    for name, passed in results.items():
        print(f"{'PASS' if passed else 'FAIL'}  {name}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
