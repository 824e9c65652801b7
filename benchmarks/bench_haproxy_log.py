"""HAProxy's request log at 5000 requests/s: what receiving it costs watchdogd, and what is lost.

Real parts: HAProxy (Debian's 2.6) on loopback in front of two cheap HTTP servers ("blue" and
"green", weights 50/50), logging every request with watchdogd's ``log-format`` to a Unix
datagram socket; ``wrk`` (2 threads, 64 connections, each pausing ``DELAY_MS`` between
requests, so the rate is about 5000/s when the machine has the CPU) for ``SECONDS``. The
receiver runs in its own process (``haproxy_log_receiver.py``), an asyncio loop like the
daemon's, with a lag probe: a task that sleeps 5 ms and records how late it wakes up.

Two receivers, the same load, the same run, alternating ``REPEATS`` times (counts and CPU are
summed over the runs, lag and rate are the median run's):

* **watchdogd**: :class:`watchdogd.traffic.log_receiver.HAProxyLogReceiver`, whose sink feeds
  one ``core.window.Window`` per server (what the daemon does with each sample);
* **null** (the baseline, the floor of any receiver on this loop): the same socket read from
  the same loop with ``add_reader``, each datagram received and thrown away.

Rows: CPU per 1000 requests (ours / null), how long each wakeup of the reader holds the event
loop (timed around the reader callback: what the receiver itself adds to everybody's lag,
which the machine's own noise does not blur), the lag probe's p99 and max, lines
received against requests wrk completed, and lines dropped (HAProxy's ``DroppedLogs``: lines
it could not queue on the socket). Plus the parse cost of one line, timed alone.

The kernel queues at most ``net.unix.max_dgram_qlen`` datagrams for the socket (a per network
namespace sysctl, 10 by default). The whole measurement runs with the host's value and, when
that is below 512 and the benchmark runs as root, again in a private network namespace
(``unshare --net``) set to 512, so the host is left as it was.

Targets: a wakeup holds the loop at most 1 ms (p99); every request either received or counted
as dropped; at most 1 % dropped at qlen 512. The lag probe's figures are reported: on a shared
machine they mostly measure the neighbours.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

from common import LocalServers, Row, free_port, wait_port

from watchdogd.traffic.log_line import LOG_FORMAT, LogLineParser

SECONDS, REPEATS = 6.0, 3
QUICK_SECONDS = 4.0
THREADS, CONNECTIONS, DELAY_MS = 2, 64, 10
RECEIVER = Path(__file__).with_name("haproxy_log_receiver.py")
RECOMMENDED_QLEN = 512  # systemd's sysctl default; see docs/blue-green.md
LINE = b"<134>Nov 30 13:28:47 haproxy[9675]: app/green 200 9 12 ----\n"

WRK_SCRIPT = f"""\
function delay() return {DELAY_MS} end
done = function(summary, latency, requests)
  io.write(string.format("WRK_RESULT %d %d\\n", summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout))
end
"""


# --------------------------------------------------------------------------- the parent


def _admin(path: Path, line: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        sock.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def _dropped_logs(admin: Path) -> int:
    match = re.search(r"^DroppedLogs: (\d+)$", _admin(admin, "show info"), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _haproxy_config(workdir: Path, port: int, servers: list[int]) -> Path:
    config = workdir / "haproxy.cfg"
    config.write_text(
        f"""\
global
    stats socket {workdir / "admin.sock"} mode 600 level admin
    log {workdir / "log.sock"} local0 info
    maxconn 4096
defaults
    mode http
    log global
    log-format "{LOG_FORMAT}"
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend web
    bind 127.0.0.1:{port}
    default_backend app
backend app
    balance roundrobin
    server blue 127.0.0.1:{servers[0]} weight 50
    server green 127.0.0.1:{servers[1]} weight 50
"""
    )
    return config


def _wrk(url: str, script: Path, seconds: float) -> tuple[int, int]:
    result = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    )
    match = re.search(r"^WRK_RESULT (\d+) (\d+)$", result.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result: {result.stdout}\n{result.stderr}")
    return int(match.group(1)), int(match.group(2))


def _one_run(kind: str, workdir: Path, url: str, script: Path, seconds: float) -> dict[str, float]:
    admin, log_socket = workdir / "admin.sock", workdir / "log.sock"
    child = subprocess.Popen(
        [sys.executable, str(RECEIVER), kind, str(log_socket)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the {kind} receiver did not start")
    dropped_before = _dropped_logs(admin)
    started = time.monotonic()
    requests, errors = _wrk(url, script, seconds)
    elapsed = time.monotonic() - started
    time.sleep(0.5)  # the last datagrams
    child.stdin.write("stop\n")
    child.stdin.flush()
    result: dict[str, float] = json.loads(child.stdout.readline())
    child.wait(timeout=10)
    result.update(
        requests=requests,
        errors=errors,
        rate=requests / elapsed,
        dropped=_dropped_logs(admin) - dropped_before,
    )
    print(f"   {kind}: {json.dumps(result)}", flush=True)
    return result


def _combined(runs: list[dict[str, float]]) -> dict[str, float]:
    """Counts and CPU summed over the runs; lag and rate as the median run's."""
    total = {key: sum(r[key] for r in runs) for key in ("received", "dropped", "requests")}
    total |= {key: sum(r[key] for r in runs) for key in ("errors", "cpu_s", "malformed")}
    total["wakeups"] = sum(r["wakeups"] for r in runs)
    for key in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms", "rate", "hold_p99_ms", "hold_max_ms"):
        total[key] = statistics.median(r[key] for r in runs)
    return total


def measure(seconds: float, repeats: int) -> dict[str, Any]:
    """Both receivers behind one HAProxy in this network namespace, alternating, ``repeats``
    times each (the machine is shared: alternating spreads its noise over both)."""
    parser = LogLineParser()
    number = 200_000
    parse_us = min(timeit.repeat(lambda: parser.parse(LINE), number=number, repeat=3)) / number
    servers = LocalServers(2)
    workdir = Path(tempfile.mkdtemp(prefix="bench-haproxy-log-"))
    port = free_port()
    config = _haproxy_config(workdir, port, servers.ports)
    script = workdir / "delay.lua"
    script.write_text(WRK_SCRIPT)
    haproxy = subprocess.Popen(
        ["haproxy", "-db", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}/"
        nulls, ours_runs = [], []
        for _ in range(repeats):
            nulls.append(_one_run("null", workdir, url, script, seconds))
            ours_runs.append(_one_run("watchdogd", workdir, url, script, seconds))
        null, ours = _combined(nulls), _combined(ours_runs)
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)
        servers.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "qlen": _max_dgram_qlen(),
        "parse_us": parse_us * 1e6,
        "null": null,
        "ours": ours,
        "load": os.getloadavg()[0],
    }


def _in_private_netns(seconds: float, repeats: int, qlen: int) -> dict[str, Any] | None:
    """The same measurement in a new network namespace with ``net.unix.max_dgram_qlen`` set
    (the sysctl is per namespace: the host's is untouched). Needs root and unshare."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    inner = (
        f"ip link set lo up && sysctl -qw net.unix.max_dgram_qlen={qlen} && "
        f"exec {sys.executable} {__file__} --measure {seconds:g} {repeats}"
    )
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", inner],
        capture_output=True,
        text=True,
        check=False,
        timeout=2 * repeats * (seconds + 10) + 120,
        cwd=Path(__file__).parent,
    )
    sys.stdout.write(result.stdout.rpartition("\n{")[0] + "\n")
    if result.returncode != 0:
        print(f"   private namespace run failed: {result.stderr[-2000:]}", flush=True)
        return None
    data: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return data


def _rows(result: dict[str, Any]) -> list[Row]:
    null, ours = result["null"], result["ours"]
    qlen = f"qlen {result['qlen']}"

    def per_1000(r: dict[str, float]) -> float:
        return r["cpu_s"] / max(r["requests"], 1) * 1e6  # ms per 1000 requests

    def accounted(r: dict[str, float]) -> float:
        return (r["received"] + r["dropped"]) / max(r["requests"], 1) * 100

    def drop_pct(r: dict[str, float]) -> float:
        return r["dropped"] / max(r["requests"], 1) * 100

    drops_target = "<= 1 %" if int(result["qlen"]) >= RECOMMENDED_QLEN else "(reported)"
    return [
        Row(
            "haproxy-log",
            f"receiver CPU per 1000 requests ({qlen})",
            per_1000(ours),
            "ms",
            "null receiver",
            per_1000(null),
            target="(reported)",
            note=(
                f"{qlen}: wrk {ours['rate']:.0f} requests/s ({ours['requests']:.0f}, "
                f"{ours['errors']:.0f} errors); null run {null['rate']:.0f}/s; "
                f"load average {result['load']:.1f}"
            ),
        ),
        Row(
            "haproxy-log",
            f"loop held per wakeup, p99 ({qlen})",
            ours["hold_p99_ms"],
            "ms",
            "null receiver",
            null["hold_p99_ms"],
            target="<= 1 ms",
            passed=ours["hold_p99_ms"] <= 1,
            note=(
                f"{qlen}: max {ours['hold_max_ms']:.1f} ms (null {null['hold_max_ms']:.1f} ms); "
                f"{ours['received'] / max(ours['wakeups'], 1):.1f} lines a wakeup"
            ),
        ),
        Row(
            "haproxy-log",
            f"loop lag p99 while receiving ({qlen})",
            ours["lag_p99_ms"],
            "ms",
            "null receiver",
            null["lag_p99_ms"],
            target="(reported)",
            note=f"{qlen}: max {ours['lag_max_ms']:.1f} ms (null {null['lag_max_ms']:.1f} ms)",
        ),
        Row(
            "haproxy-log",
            f"requests received or counted dropped ({qlen})",
            accounted(ours),
            "%",
            "null receiver",
            accounted(null),
            target=">= 100 %",
            passed=accounted(ours) >= 100,
        ),
        Row(
            "haproxy-log",
            f"log lines dropped ({qlen})",
            drop_pct(ours),
            "%",
            "null receiver",
            drop_pct(null),
            target=drops_target,
            passed=drop_pct(ours) <= 1 if drops_target != "(reported)" else None,
        ),
    ]


def run(quick: bool = False) -> list[Row]:
    if shutil.which("haproxy") is None or shutil.which("wrk") is None:
        return [
            Row("haproxy-log", "did not run: needs haproxy and wrk (Debian packages)", None, "")
        ]
    seconds, repeats = (QUICK_SECONDS, 1) if quick else (SECONDS, REPEATS)
    here = measure(seconds, repeats)
    rows = [
        Row(
            "haproxy-log", "parse one line", float(str(here["parse_us"])), "us", target="(reported)"
        ),
        *_rows(here),
    ]
    if int(here["qlen"]) < RECOMMENDED_QLEN:
        private = _in_private_netns(seconds, repeats, RECOMMENDED_QLEN)
        if private is not None:
            rows.extend(_rows(private))
    return rows


def _max_dgram_qlen() -> str:
    try:
        return Path("/proc/sys/net/unix/max_dgram_qlen").read_text().strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        print(json.dumps(measure(float(sys.argv[2]), int(sys.argv[3]))), flush=True)
    else:
        from common import print_table

        print_table(run(quick="--quick" in sys.argv))
