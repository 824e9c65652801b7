"""The receiving end of ``bench_haproxy_log.py``: one receiver (``watchdogd`` or ``null``) in
its own process, an asyncio loop like the daemon's with a lag probe, reading HAProxy's log
datagrams until the parent writes ``stop``; then its figures as one JSON line.

Run by the benchmark as ``python haproxy_log_receiver.py KIND SOCKET``: it prints ``ready``
once the socket is bound.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import Callable

from common import percentile

LAG_TICK = 0.005


async def receive(kind: str, path: str) -> dict[str, float]:
    from watchdogd.core.window import Window  # noqa: PLC0415 - only in the child
    from watchdogd.traffic.log_receiver import HAProxyLogReceiver  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    lags: list[float] = []
    windows: dict[str, Window] = {}
    received = 0

    def sink(backend: str, server: str, now: float, status: int, seconds: float) -> None:
        window = windows.get(server)
        if window is None:
            window = windows[server] = Window()
        window.add(now, status < 500, seconds)

    holds: list[float] = []  # how long each wakeup of the reader held the loop

    def timed(read: Callable[[], None]) -> Callable[[], None]:
        def wakeup() -> None:
            started = time.perf_counter()
            read()
            holds.append(time.perf_counter() - started)

        return wakeup

    receiver: HAProxyLogReceiver | None = None
    sock: socket.socket | None = None
    if kind == "watchdogd":
        receiver = HAProxyLogReceiver(path, sink, mode=0o666)
        receiver._on_readable = timed(receiver._on_readable)  # type: ignore[method-assign]
        await receiver.start()
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.setblocking(False)

        def discard() -> None:
            nonlocal received
            assert sock is not None
            for _ in range(256):
                try:
                    sock.recv(4096)
                except BlockingIOError:
                    return
                received += 1

        loop.add_reader(sock.fileno(), timed(discard))

    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    print("ready", flush=True)
    cpu_start = time.process_time()

    async def probe() -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(LAG_TICK)
            lags.append(time.monotonic() - started - LAG_TICK)

    probing = asyncio.create_task(probe())
    await stop.wait()
    cpu = time.process_time() - cpu_start
    probing.cancel()
    if receiver is not None:
        received = receiver.counters.received
        malformed = receiver.counters.malformed
        await receiver.close()
    else:
        malformed = 0
        assert sock is not None
        sock.close()
        os.unlink(path)
    return {
        "received": received,
        "malformed": malformed,
        "cpu_s": cpu,
        "lag_p50_ms": percentile(lags, 0.5) * 1000,
        "lag_p99_ms": percentile(lags, 0.99) * 1000,
        "lag_max_ms": max(lags) * 1000,
        "hold_p99_ms": percentile(holds, 0.99) * 1000 if holds else 0.0,
        "hold_max_ms": max(holds, default=0.0) * 1000,
        "wakeups": len(holds),
    }


def main(kind: str, path: str) -> None:
    import structlog  # noqa: PLC0415

    # stdout carries the protocol with the parent; the receiver's log goes to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    result = asyncio.run(receive(kind, path))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
