"""Baselines that run beside the daemon: Debian's blackbox_exporter driven the way Prometheus
drives it, and a bare prober (watchdogd's own HTTP source with nothing around it).

Both schedule their checks with the sources' own ``run_every`` (a random phase per check, then
fixed rate), so they put the same load on the same servers as the daemon does.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from common import CountingSink, free_port, http_check, process_cpu, process_rss, wait_port

from watchdogd.sources.http import HttpProbe
from watchdogd.sources.probe_client import open_probe_client
from watchdogd.sources.schedule import run_every

BLACKBOX = Path("/usr/bin/prometheus-blackbox-exporter")


class Blackbox:
    """blackbox_exporter on a free port with an ``http_2xx`` module."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-blackbox-"))
        config = self.workdir / "blackbox.yml"
        config.write_text(
            "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"
            "    http:\n      preferred_ip_protocol: ip4\n"
        )
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                str(BLACKBOX),
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "blackbox.log").open("wb"),
        )
        wait_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}/probe"

    @staticmethod
    def available() -> bool:
        return BLACKBOX.exists()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def _drive_blackbox(url: str, targets: list[str], seconds: float) -> int:
    """Ask the exporter to probe each target once a second, as Prometheus would."""
    failures = 0
    connector = aiohttp.TCPConnector(limit=len(targets))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def probe(target: str) -> None:
            nonlocal failures
            params = {"target": target, "module": "http_2xx"}
            async with session.get(url, params=params) as response:
                failures += "probe_success 1" not in await response.text()

        tasks = [
            asyncio.create_task(run_every(1.0, lambda _d, t=t: probe(t), name=t))  # type: ignore[misc]
            for t in targets
        ]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return failures


def blackbox_load(targets: list[str], warmup: float, seconds: float) -> dict[str, float]:
    """The exporter's CPU (share of one core) and RSS (MB) while probing ``targets`` at 1 s."""
    exporter = Blackbox()
    try:
        asyncio.run(_drive_blackbox(exporter.url, targets, warmup))
        cpu = process_cpu(exporter.proc.pid)
        failures = asyncio.run(_drive_blackbox(exporter.url, targets, seconds))
        cpu = process_cpu(exporter.proc.pid) - cpu
        rss = process_rss(exporter.proc.pid)
    finally:
        exporter.close()
    return {"cpu": cpu / seconds, "rss": rss, "failures": failures}


# --------------------------------------------------------------------------- the bare prober


async def _bare(urls: list[str], seconds: float) -> dict[str, object]:
    from lagged_daemon import sample_lag  # noqa: PLC0415 - the same sampler as the daemon's

    sink = CountingSink()
    lag: list[tuple[float, float]] = []
    sampler = asyncio.create_task(sample_lag(lag))
    async with open_probe_client() as client:
        probes = [
            HttpProbe(http_check(url, i, 1.0, timeout=2.0), sink, client)
            for i, url in enumerate(urls)
        ]
        tasks = [asyncio.create_task(p.run()) for p in probes]
        await asyncio.sleep(seconds)
        for task in (*tasks, sampler):
            task.cancel()
        await asyncio.gather(*tasks, sampler, return_exceptions=True)
    return {"lag": lag, "ok": sink.ok}


def bare_prober(urls: list[str], warmup: float, seconds: float) -> dict[str, float]:
    """Lag p99 (s), CPU share and RSS (MB) of a process that only runs the HTTP probes."""
    from common import percentile  # noqa: PLC0415

    workdir = Path(tempfile.mkdtemp(prefix="bench-bare-"))
    spec, out = workdir / "spec.json", workdir / "out.json"
    spec.write_text(json.dumps({"urls": urls, "seconds": warmup + seconds}))
    proc = subprocess.Popen(
        [sys.executable, __file__, "--bare", str(spec), str(out)],
        stdout=(workdir / "log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    time.sleep(warmup)
    cpu = process_cpu(proc.pid)
    started = time.monotonic()
    time.sleep(seconds)
    cpu = process_cpu(proc.pid) - cpu
    rss = process_rss(proc.pid)
    if proc.wait(timeout=60) != 0:
        raise RuntimeError(f"the bare prober failed: {(workdir / 'log').read_text()[-2000:]}")
    result = json.loads(out.read_text())
    shutil.rmtree(workdir, ignore_errors=True)
    lags = [lag for at, lag in result["lag"] if at >= started]
    return {"lag_p99": percentile(lags, 0.99), "cpu": cpu / seconds, "rss": rss}


if __name__ == "__main__" and sys.argv[1:2] == ["--bare"]:
    spec = json.loads(Path(sys.argv[2]).read_text())
    result = asyncio.run(_bare(spec["urls"], spec["seconds"]))
    Path(sys.argv[3]).write_text(json.dumps(result))
