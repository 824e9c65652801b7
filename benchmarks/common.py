"""What every benchmark shares: result rows and their table, process CPU and memory from /proc,
a cheap local HTTP server, and the real daemon as a child process.

Each benchmark returns :class:`Row` objects: one figure for watchdogd, the same figure for a
baseline measured in the same run (a peer such as blackbox_exporter or Docker Swarm, or the
floor: the library or algorithm watchdogd builds on, with nothing of watchdogd on top), their
ratio, and the target from the issue. ``run_all`` prints them in one table.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from shipped_env import daemon_environment

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a throwaway daemon's token


@dataclass
class Row:
    """One line of the table. ``higher_is_better`` says which way the ratio should point:
    for a cost (CPU, latency, memory) ``ratio = ours / baseline`` and below 1 is better."""

    bench: str
    metric: str
    ours: float | None
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    target: str = ""
    passed: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.baseline is None or self.baseline == 0:
            return None
        if math.isinf(self.baseline):
            return None  # the baseline never got there: printed as such
        return self.ours / self.baseline

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": self.ratio}


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "never"
    if value == 0:
        text = "0"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 0.01:
        text = f"{value:.2f}"
    else:
        text = f"{value:.2g}"
    return f"{text} {unit}".strip()


def print_table(rows: Sequence[Row]) -> None:
    header = ("bench", "metric", "watchdogd", "baseline", "baseline value", "ratio", "target", "")
    lines = [header]
    for row in rows:
        ratio = row.ratio
        ratio_text = "-" if ratio is None else ("never" if math.isinf(ratio) else f"{ratio:.2f}x")
        if row.ratio is None and row.baseline is not None and math.isinf(row.baseline):
            ratio_text = "baseline never"
        verdict = "" if row.passed is None else ("PASS" if row.passed else "FAIL")
        lines.append(
            (
                row.bench,
                row.metric,
                fmt(row.ours, row.unit),
                row.baseline_name,
                fmt(row.baseline, row.unit) if row.baseline_name else "",
                ratio_text,
                row.target,
                verdict,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for n, line in enumerate(lines):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [f"- {row.bench} / {row.metric}: {row.note}" for row in rows if row.note]
    if notes:
        print("\n" + "\n".join(notes))


def machine() -> dict[str, str]:
    """The facts a reader needs to compare figures: CPU, cores, kernel, versions."""
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    docker = ""
    if shutil.which("docker"):
        result = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            check=False,
        )
        docker = result.stdout.strip()
    os_name = ""
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "os": os_name,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "docker": docker,
    }


# --------------------------------------------------------------------------- /proc


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def process_rss(pid: int) -> float:
    """Resident memory in MB (10^6 bytes, the unit of the issue's targets)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1])."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# --------------------------------------------------------------------------- a cheap server

RESPONSE = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok":true}\n'
)


class _Responder(asyncio.Protocol):
    """Answers every GET with a fixed 200, keep-alive: answering costs microseconds, so the
    target never limits what is measured."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        requests = self.pending.count(b"\r\n\r\n")
        if requests:
            self.pending = self.pending[self.pending.rfind(b"\r\n\r\n") + 4 :]
            self.transport.write(RESPONSE * requests)


async def _serve(count: int) -> None:
    loop = asyncio.get_running_loop()
    ports = []
    for _ in range(count):
        server = await loop.create_server(_Responder, "127.0.0.1", 0, backlog=4096)
        ports.append(server.sockets[0].getsockname()[1])
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()


class LocalServers:
    """``count`` HTTP ports served by one child process (``python common.py --serve N``)."""

    def __init__(self, count: int = 1) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(count)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.ports: list[int] = json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# --------------------------------------------------------------------------- bare probes


class CountingSink:
    """A ``SampleSink`` for probes run outside the daemon: counts the good ones, keeps the
    failures' details, drops everything else."""

    def __init__(self) -> None:
        self.ok = 0
        self.failed: list[str] = []

    def probe_started(self, now: float) -> int:
        return 0

    def probe(
        self,
        now: float,
        ok: bool,
        latency: float | None,
        detail: str = "",
        token: int | None = None,
    ) -> None:
        if ok:
            self.ok += 1
        else:
            self.failed.append(detail)

    def counts(self, now: float, requests: int, errors: int) -> None: ...
    def latency(
        self, now: float, seconds: float, count: int = 1, *, above: bool = False
    ) -> None: ...
    def value(self, now: float, value: float) -> None: ...
    def unknown(self, now: float, reason: str, token: int | None = None) -> None: ...


def http_check(url: str, index: int, interval: float, timeout: float | None = None) -> Any:
    """The ``HttpCheck`` named ``c{index}`` of ``url``, as the benchmarks' bare probes use."""
    from watchdogd.config.schema import HttpCheck  # noqa: PLC0415 - only the probe benches
    from watchdogd.config.validation import parse  # noqa: PLC0415

    spec: dict[str, Any] = {"name": f"c{index}", "type": "http", "url": url, "interval": interval}
    if timeout is not None:
        spec["timeout"] = timeout
    return parse(HttpCheck, spec)


# --------------------------------------------------------------------------- the daemon


class DaemonProc:
    """``watchdogd run`` (or ``lagged_daemon.py``) as a child process in its own session."""

    def __init__(
        self,
        config: Path,
        port: int,
        *,
        log: Path,
        argv: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.port = port
        self.log = log
        command = list(argv or [sys.executable, "-m", "watchdogd", "run", "--config", str(config)])
        self.proc = subprocess.Popen(
            command,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            # As the shipped unit runs it (PYTHONOPTIMIZE=2 and the rest of its Environment=).
            env=daemon_environment(os.environ) | (env or {}),
            start_new_session=True,
            cwd=ROOT,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log.read_text()[-3000:]}")
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"daemon not ready after {timeout} s: {self.log.read_text()[-3000:]}")

    def target(self, name: str) -> dict[str, Any]:
        return self.http.get(f"/api/v1/targets/{name}").json()  # type: ignore[no-any-return]

    def wait_state(self, name: str, state: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.target(name)
            if last.get("state") == state:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} never reached {state}: {last}\n{self.log.read_text()[-3000:]}")

    def events(self, limit: int = 500) -> list[dict[str, Any]]:
        return self.http.get(f"/api/v1/events?limit={limit}").json()["events"]  # type: ignore[no-any-return]

    def stop(self, timeout: float = 30.0) -> int:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` in Prometheus text whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series.split("{", 1)[0] != name:
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        asyncio.run(_serve(int(sys.argv[2])))
