"""The real daemon under load: idle with 10 targets, and at scale with 1000.

Each target is a release directory (so no Docker engine is involved and the figures are the
daemon's own) with one HTTP check at a 1 s interval against a local server, and two gates
(error rate above 1 %, p95 latency above 1 s). The servers are raw asyncio responders in one
child process, on several ports, so the daemon keeps a pool of keep-alive connections per
port as it would against real services.

* **idle**: ``watchdogd run`` with 10 targets; after a warm-up, CPU (share of one core, from
  ``/proc/PID/stat``) and RSS over the measurement. Baseline: blackbox_exporter asked to probe
  the same 10 URLs once a second, as Prometheus would. Start to READY is the median of
  ``START_RUNS`` more starts, each on a fresh state directory (the machine is shared: one start
  says little), with the package's bytecode written first, as an install does. What each
  import costs: ``import_cost.py``.
* **scale**: ``lagged_daemon.py`` (the daemon plus an event-loop lag sampler) with 1000
  targets for 60 s after a 20 s warm-up (the bakes pass and are recorded in it). ``/metrics``
  is fetched every 15 s during the measurement, as Prometheus would, and its response time
  counts as the render time. Probes done are read from ``watchdogd_probes_total``.
  Baselines: blackbox_exporter probing the same 1000 URLs a second (CPU, RSS); a bare prober,
  watchdogd's HTTP source alone on ``run_every`` with the same lag sampler (loop lag); and
  ``prometheus_client`` rendering a plain registry with as many series as our ``/metrics``
  (render time).
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from common import (
    TOKEN,
    DaemonProc,
    LocalServers,
    Row,
    free_port,
    metric_sum,
    percentile,
    process_cpu,
    process_rss,
)
from peers import Blackbox, bare_prober, blackbox_load

SERVER_PORTS = 8
START_RUNS = 7


def write_config(workdir: Path, count: int, ports: list[int]) -> tuple[Path, int, list[str]]:
    """``count`` release-directory targets probing the local servers; returns (config, port,
    the probed URLs)."""
    port = free_port()
    urls: list[str] = []
    lines = [
        f"listen: 127.0.0.1:{port}",
        f"api_token: {TOKEN}",
        f"state_dir: {workdir / 'state'}",
        "log: {format: json, level: info}",
        "defaults: {bake_time: 10s}",
        "targets:",
    ]
    for index in range(count):
        name = f"t{index:04d}"
        root = workdir / "apps" / name
        (root / "releases" / "v1").mkdir(parents=True)
        (root / "current").symlink_to(root / "releases" / "v1")
        url = f"http://127.0.0.1:{ports[index % len(ports)]}/{name}/health"
        urls.append(url)
        lines += [
            f"  - name: {name}",
            f"    release_dir: {{path: {root}, restart: [/bin/true]}}",
            "    checks:",
            f'      - {{name: api, type: http, url: "{url}", interval: 1s, timeout: 2s}}',
            "    gates:",
            "      - {check: api, metric: error_rate, above: 1%}",
            "      - {check: api, metric: latency_p95, above: 1s}",
        ]
    config = workdir / "watchdogd.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config, port, urls


class Scraper(threading.Thread):
    """Fetches /metrics every ``every`` seconds, as Prometheus would; records response times."""

    def __init__(self, url: str, every: float) -> None:
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.times: list[float] = []
        self.size = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30, trust_env=False) as client:
            while not self.stopped.wait(self.every):
                started = time.perf_counter()
                response = client.get(self.url)
                self.times.append(time.perf_counter() - started)
                self.size = len(response.content)


def daemon_load(
    servers: LocalServers,
    count: int,
    warmup: float,
    seconds: float,
    *,
    lagged: bool,
    scrape_every: float | None,
) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-load-{count}-"))
    daemon: DaemonProc | None = None
    try:
        config, port, urls = write_config(workdir, count, servers.ports)
        lag_file = workdir / "lag.json"
        argv = None
        if lagged:
            here = Path(__file__).resolve().parent
            argv = [_python(), str(here / "lagged_daemon.py"), str(config), str(lag_file)]
        started_at = time.monotonic()
        daemon = DaemonProc(config, port, log=workdir / "daemon.log", argv=argv)
        daemon.wait_ready(timeout=120)
        ready_after = time.monotonic() - started_at
        time.sleep(warmup)
        probes = metric_sum(daemon.http.get("/metrics").text, "watchdogd_probes_total")
        scraper = None
        if scrape_every:
            scraper = Scraper(f"http://127.0.0.1:{port}/metrics", scrape_every)
            scraper.start()
        cpu, began = process_cpu(daemon.pid), time.monotonic()
        time.sleep(seconds)
        cpu, elapsed = process_cpu(daemon.pid) - cpu, time.monotonic() - began
        rss = process_rss(daemon.pid)
        if scraper is not None:
            scraper.stopped.set()
            scraper.join()
        text = daemon.http.get("/metrics").text
        done = metric_sum(text, "watchdogd_probes_total") - probes
        failures = metric_sum(text, "watchdogd_probes_total", result="failure")
        states = [t["state"] for t in daemon.http.get("/api/v1/targets").json()["targets"]]
        renders = list(scraper.times) if scraper else []
        for _ in range(5):  # and a few more back to back, after the measurement
            t0 = time.perf_counter()
            daemon.http.get("/metrics")
            renders.append(time.perf_counter() - t0)
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        daemon.stop()
        result: dict[str, object] = {
            "cpu": cpu / elapsed,
            "rss": rss,
            "probes_per_s": done / elapsed,
            "failures": failures,
            "healthy": states.count("healthy"),
            "renders": renders,
            "series": series,
            "ready_after": ready_after,
            "urls": urls,
        }
        if lagged:
            samples = json.loads(lag_file.read_text())
            result["lag_p99"] = percentile(
                [lag for at, lag in samples["lag"] if began <= at <= began + elapsed], 0.99
            )
            result["gc"] = [p for p in samples["gc"] if began <= p[0] <= began + elapsed]
        return result
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def first_start(servers: LocalServers) -> None:
    """One start, not measured. As under the shipped unit, the first start writes the bytecode
    (``PYTHONOPTIMIZE=2``, into the cache directory) that later starts read; compiling every
    module at start costs about 1 s of CPU and leaves 1 MB more resident."""
    ready_times(servers, 10, 1)


def ready_times(servers: LocalServers, count: int, runs: int) -> list[tuple[float, float]]:
    """(seconds, CPU seconds) from process start to the first 200 from /readyz, for ``runs``
    fresh starts. The CPU time hardly moves with the machine's load; the wall time does."""
    times = []
    for _ in range(runs):
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-start-{count}-"))
        daemon: DaemonProc | None = None
        try:
            config, port, _ = write_config(workdir, count, servers.ports)
            started_at = time.monotonic()
            daemon = DaemonProc(config, port, log=workdir / "daemon.log")
            daemon.wait_ready(timeout=120)
            times.append((time.monotonic() - started_at, process_cpu(daemon.pid)))
        finally:
            if daemon is not None:
                daemon.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    return times


def _python() -> str:
    import sys  # noqa: PLC0415

    return sys.executable


def render_floor(series: int) -> float:
    """Seconds prometheus_client takes to render ``series`` plain labelled gauges."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest  # noqa: PLC0415

    registry = CollectorRegistry()
    gauge = Gauge("bench_series", "floor", ["target", "check", "n"], registry=registry)
    for i in range(series):
        gauge.labels(f"t{i // 40:04d}", "api", str(i % 40)).set(i)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        generate_latest(registry)
        best = min(best, time.perf_counter() - started)
    return best


def run_idle(quick: bool = False) -> list[Row]:
    seconds = 15.0 if quick else 30.0
    servers = LocalServers(SERVER_PORTS)
    try:
        first_start(servers)
        ours = daemon_load(servers, 10, 10.0, seconds, lagged=False, scrape_every=None)
        starts, start_cpu = zip(*ready_times(servers, 10, 3 if quick else START_RUNS), strict=True)
        urls: list[str] = ours["urls"]  # type: ignore[assignment]
        peer = blackbox_load(urls, 3.0, seconds) if Blackbox.available() else None
    finally:
        servers.close()
    rss, cpu = float(ours["rss"]), float(ours["cpu"])  # type: ignore[arg-type]
    name = "blackbox_exporter, 10 probes/s"
    return [
        Row(
            "idle",
            "RSS, 10 targets at 1 s",
            rss,
            "MB",
            name if peer else "",
            peer["rss"] if peer else None,
            "<= 45 MB",
            rss <= 45,
            note="issue #16's target, in the shipped unit's environment; where it goes: "
            "BENCHMARKS.md, idle",
        ),
        Row(
            "idle",
            f"start to READY, 10 targets (median of {len(starts)})",
            statistics.median(starts),
            "s",
            target="< 1 s",
            passed=statistics.median(starts) < 1.0,
            note="process start to the first 200 from /readyz, polled every 0.1 s; "
            f"fastest {min(starts):.2f} s, slowest {max(starts):.2f} s; "
            f"CPU time to READY {statistics.median(start_cpu):.2f} s (median)",
        ),
        Row(
            "idle",
            "CPU, 10 targets at 1 s",
            cpu * 100,
            "% of a core",
            name if peer else "",
            peer["cpu"] * 100 if peer else None,
            note=f"measured over {seconds:g} s after a 10 s warm-up",
        ),
    ]


def run_scale(quick: bool = False) -> list[Row]:
    count = 1000
    seconds = 20.0 if quick else 60.0
    servers = LocalServers(SERVER_PORTS)
    try:
        first_start(servers)
        ours = daemon_load(
            servers, count, 20.0, seconds, lagged=True, scrape_every=5.0 if quick else 15.0
        )
        urls: list[str] = ours["urls"]  # type: ignore[assignment]
        bare = bare_prober(urls, 5.0, seconds)
        peer = blackbox_load(urls, 5.0, seconds) if Blackbox.available() else None
    finally:
        servers.close()
    renders: list[float] = ours["renders"]  # type: ignore[assignment]
    floor = render_floor(int(ours["series"]))  # type: ignore[call-overload]
    cpu, rss, lag = (float(ours[k]) for k in ("cpu", "rss", "lag_p99"))  # type: ignore[arg-type]
    rate = float(ours["probes_per_s"])  # type: ignore[arg-type]
    render = percentile(renders, 0.5)
    peer_name = f"blackbox_exporter, {count} probes/s"
    return [
        Row(
            "scale",
            f"CPU, {count} targets at 1 s",
            cpu * 100,
            "% of a core",
            peer_name if peer else "",
            peer["cpu"] * 100 if peer else None,
            "< 50 %",
            cpu < 0.5,
            note=f"{rate:.0f} probes/s done of {count} due "
            f"({ours['failures']:.0f} failed); {ours['healthy']} of {count} targets healthy; "
            f"ready {ours['ready_after']:.1f} s after start",
        ),
        Row(
            "scale",
            f"RSS, {count} targets",
            rss,
            "MB",
            peer_name if peer else "",
            peer["rss"] if peer else None,
        ),
        Row(
            "scale",
            "event-loop lag p99",
            lag * 1000,
            "ms",
            "bare prober (HTTP source only)",
            bare["lag_p99"] * 1000,
            "<= 50 ms",
            lag <= 0.05,
            note=f"bare prober: CPU {bare['cpu'] * 100:.0f} % of a core, RSS {bare['rss']:.0f} MB",
        ),
        Row(
            "scale",
            "/metrics response (median)",
            render * 1000,
            "ms",
            f"prometheus_client, {ours['series']} gauges",
            floor * 1000,
            "<= 100 ms",
            render <= 0.1,
            note=f"{len(renders)} fetches, max {max(renders) * 1000:.0f} ms, "
            f"{ours['series']} series",
        ),
    ]


if __name__ == "__main__":
    import sys

    from common import print_table

    quick = "--quick" in sys.argv
    print_table(run_idle(quick) + run_scale(quick))
