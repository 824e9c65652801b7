"""Probe CPU against blackbox_exporter, through ``probe_bench``'s own functions.

``probe_bench.py`` (the sources' benchmark) measures watchdogd's HTTP probe and Debian's
blackbox_exporter probing the same keep-alive server, at 1, 100 and 1000 probes in flight;
CPU is each side's own (this process for watchdogd, ``/proc/PID/stat`` for the exporter). Its
docstring has the method. Here its figures become rows of the common table. Target: watchdogd
at most 0.5x blackbox_exporter's CPU per probe.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import probe_bench as pb
from common import Row


async def _measure(quick: bool, have_blackbox: bool) -> tuple[dict[int, float], dict[int, float]]:
    scale = 5 if quick else 1
    target, url = pb.start_target()
    workdir = Path(tempfile.mkdtemp(prefix="bench-probe-"))
    exporter = None
    try:
        ours = {
            c: (await pb.watchdogd_cpu(url, c, pb.PROBES[c] // scale))[0] for c in pb.CONCURRENCY
        }
        theirs: dict[int, float] = {}
        if have_blackbox:
            exporter, exporter_url = pb.start_blackbox(workdir)
            for c in pb.CONCURRENCY:
                cpu, _wall = await pb.blackbox_cpu(
                    exporter_url, exporter.pid, url, c, pb.BLACKBOX_PROBES[c] // scale
                )
                theirs[c] = cpu
    finally:
        for proc in (target, exporter):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    return ours, theirs


def run(quick: bool = False) -> list[Row]:
    ours, theirs = asyncio.run(_measure(quick, Path(pb.BLACKBOX).exists()))
    rows = []
    for c in pb.CONCURRENCY:
        peer = theirs.get(c)
        passed = None if peer is None else ours[c] <= 0.5 * peer
        rows.append(
            Row(
                "probe",
                f"CPU per HTTP probe, {c} in flight",
                ours[c],
                "ms",
                "blackbox_exporter" if peer is not None else "",
                peer,
                "<= 0.5x",
                passed,
            )
        )
    return rows


if __name__ == "__main__":
    import sys

    from common import print_table

    print_table(run("--quick" in sys.argv))
