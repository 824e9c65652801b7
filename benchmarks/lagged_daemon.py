"""The real daemon with an event-loop lag sampler on its loop: the scale benchmark's measure.

``python benchmarks/lagged_daemon.py CONFIG OUT.json`` runs exactly what ``watchdogd run``
runs (``Daemon(...).main()``), plus one task that sleeps ``INTERVAL`` again and again and
records how late each wake-up came. A callback that holds the loop for 80 ms shows up as a
wake-up 80 ms late, so the distribution of lateness is the loop's lag as every probe, tick and
request on it sees it. At SIGTERM the daemon shuts down as usual and the samples
(``{"lag": [[monotonic time, lag seconds], ...], "gc": [[start, generation, seconds], ...]}``,
the second list for each garbage collection over 1 ms) are written to ``OUT.json``.

The daemon's own ``watchdogd_event_loop_lag_seconds`` is only updated under systemd's watchdog
(``WATCHDOG_USEC``) and only says how late the last tick ran; this sampler gives a full
distribution without changing the daemon. It costs 50 wake-ups a second, about 0.2 % of a core.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from pathlib import Path

from watchdogd.config import Config
from watchdogd.config.out_of_process import PendingConfig
from watchdogd.daemon import logs
from watchdogd.daemon.lifecycle import Daemon, read_token
from watchdogd.daemon.state_lock import StateDirLock

INTERVAL = 0.02


async def sample_lag(samples: list[tuple[float, float]]) -> None:
    while True:
        before = time.monotonic()
        await asyncio.sleep(INTERVAL)
        now = time.monotonic()
        samples.append((now, max(0.0, now - before - INTERVAL)))


def watch_gc(pauses: list[tuple[float, int, float]]) -> None:
    """Record each garbage collection that held the loop for more than a millisecond."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.monotonic()]
        elif started:
            took = time.monotonic() - started[0]
            if took > 0.001:
                pauses.append((started[0], info["generation"], took))

    gc.callbacks.append(callback)


async def main(config_path: str, config: Config) -> tuple[int, dict[str, object]]:
    samples: list[tuple[float, float]] = []
    pauses: list[tuple[float, int, float]] = []
    watch_gc(pauses)
    sampler = asyncio.create_task(sample_lag(samples))
    try:
        code = await Daemon(config_path, config).main()
    finally:
        sampler.cancel()
    return code, {"lag": samples, "gc": pauses}


def run(config_path: str, out: Path) -> int:
    """As ``watchdogd.daemon.lifecycle.run_daemon``, plus the sampler."""
    config = PendingConfig(config_path).result()
    token = read_token(config)
    logs.configure(config.log.level, config.log.format)
    logs.set_secrets(config.secrets | ({token} if token else set()))
    with StateDirLock.acquire(Path(config.state_dir)):
        code, samples = asyncio.run(main(config_path, config))
    out.write_text(json.dumps(samples))
    return code


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1], Path(sys.argv[2])))
