"""Receives HAProxy's per-request log on a Unix datagram socket and passes each request on.

HAProxy sends one datagram per request (``log /run/watchdogd/haproxy-log.sock local0`` and the
``log-format`` of :mod:`watchdogd.traffic.log_line`). The receiver binds that socket, reads it
from the event loop (``add_reader``), parses each line and calls
``sink(backend, server, now, status, response_time_s)``: ``now`` is ``time.monotonic()`` when
the datagrams were read, ``response_time_s`` is ``%Ta`` in seconds (what the user waited).

Why this shape, at 5000 requests/s (figures in docs/blue-green.md, from
benchmarks/bench_haproxy_log.py):

* **The kernel's socket queue is the bounded queue.** HAProxy never blocks on its log: when
  watchdogd's queue is full it drops the line and counts it (``DroppedLogs`` in ``show info``).
  So a slow or stalled watchdogd can never slow down user traffic, and nothing grows without
  bound in watchdogd either. Given the Runtime API, the receiver reads that counter every
  ``drop_poll`` seconds into ``counters.dropped`` and logs a warning when it grew: drops are
  counted and said, never hidden. The Linux queue is short: ``net.unix.max_dgram_qlen``
  datagrams, 10 by default and 512 under systemd's sysctl defaults. At 10, a quarter to
  a half of the lines were dropped at 3000-4000 requests/s on a busy 2-core machine, whatever
  the receiver (a null receiver lost as many); at 512, none up to 5000 requests/s. ``start``
  warns when it is below 512.
* **Read in batches, parse inline.** One wakeup reads every datagram waiting, up to ``batch``,
  then yields to the loop, so a flood costs the loop at most one batch of work at a time. Parsing
  is a few ``bytes`` splits (a few microseconds); a second queue and a consumer task would only
  add a hop.
* **Counts.** ``received = parsed + events + malformed`` (:class:`LogCounters`); a sink that
  raises is counted in ``sink_errors`` and logged once, and the line is lost, not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import structlog

from watchdogd.errors import TrafficError
from watchdogd.traffic.counters import LogCounters
from watchdogd.traffic.haproxy import HAProxyRuntime
from watchdogd.traffic.log_line import LineKind, LogLineParser, RequestLine

log = structlog.get_logger(__name__)

_DATAGRAM_MAX = 4096  # HAProxy's lines are at most its `log ... len` (1024 by default)
_RECEIVE_BUFFER = 4 * 1024 * 1024
_QLEN_SYSCTL = Path("/proc/sys/net/unix/max_dgram_qlen")
RECOMMENDED_QLEN = 512  # systemd's own default (sysctl.d/50-default.conf)


class RequestSink(Protocol):
    def __call__(
        self, backend: str, server: str, now: float, status: int, response_time_s: float
    ) -> None: ...


class HAProxyLogReceiver:
    """Binds ``socket_path`` (a Unix datagram socket) and feeds ``sink`` until closed.

    ``mode`` is the socket file's permission: HAProxy's user must be able to write to it (a
    shared group, or 0o666 in a directory only the two can enter); anyone who can write to it
    can forge requests that the gates will judge.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        sink: RequestSink,
        *,
        counters: LogCounters | None = None,
        runtime: HAProxyRuntime | None = None,
        drop_poll: float = 5.0,
        mode: int = 0o660,
        batch: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.counters = counters if counters is not None else LogCounters()
        self._sink = sink
        self._runtime = runtime
        self._drop_poll = drop_poll
        self._mode = mode
        self._batch = batch
        self._clock = clock
        self._parser = LogLineParser()
        self._sock: socket.socket | None = None
        self._drop_task: asyncio.Task[None] | None = None
        self._dropped_seen: int | None = None
        self._sink_failed = False
        #: ``clock()`` when the last datagram arrived, None before the first: a log that stays
        #: silent while HAProxy's request counters grow is not reaching watchdogd.
        self.last_received: float | None = None

    async def start(self) -> None:
        """Bind the socket and start reading; raise :class:`TrafficError` when it cannot."""
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._remove_stale_socket()
            sock.bind(str(self.socket_path))
            os.chmod(self.socket_path, self._mode)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
            sock.setblocking(False)
        except OSError as err:
            sock.close()
            raise TrafficError(
                f"listen on {self.socket_path}", err.strerror or type(err).__name__
            ) from None
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._on_readable)
        if self._runtime is not None:
            await self.poll_dropped()
            self._drop_task = asyncio.create_task(self._poll_drops(), name="haproxy-log-drops")
        log.info("haproxy_log_receiving", socket=str(self.socket_path))
        _warn_short_queue()

    async def close(self) -> None:
        if self._drop_task is not None:
            self._drop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drop_task
            self._drop_task = None
        if self._sock is None:
            return
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def poll_dropped(self) -> int:
        """Read HAProxy's ``DroppedLogs`` now; add what is new since the last read to
        ``counters.dropped`` and return that. The first read only sets the baseline."""
        if self._runtime is None:
            return 0
        try:
            current = int((await self._runtime.info()).get("DroppedLogs", "0"))
        except (TrafficError, ValueError):
            return 0  # the reconciler reports an unreachable HAProxy
        previous, self._dropped_seen = self._dropped_seen, current
        if previous is None:
            return 0
        # A counter that went down belongs to a restarted HAProxy: all of it is new.
        new = current - previous if current >= previous else current
        if new:
            self.counters.dropped += new
            log.warning(
                "haproxy_log_lines_dropped",
                dropped=new,
                dropped_total=self.counters.dropped,
            )
        return new

    async def _poll_drops(self) -> None:
        while True:
            await asyncio.sleep(self._drop_poll)
            await self.poll_dropped()

    def _remove_stale_socket(self) -> None:
        # A socket left by a previous run is ours to replace; any other file is not.
        try:
            mode = self.socket_path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise FileExistsError(17, f"{self.socket_path} exists and is not a socket")
        self.socket_path.unlink()

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        now = self._clock()
        parse = self._parser.parse
        sink = self._sink
        received = parsed = events = malformed = 0
        try:
            for _ in range(self._batch):
                try:
                    datagram = sock.recv(_DATAGRAM_MAX)
                except (BlockingIOError, InterruptedError):
                    break
                received += 1
                line = parse(datagram)
                if isinstance(line, RequestLine):
                    parsed += 1
                    try:
                        sink(line.backend, line.server, now, line.status, line.active_ms / 1000)
                    except Exception as err:  # a consumer bug must not stop the log
                        self._sink_error(err)
                elif line == LineKind.EVENT:
                    events += 1
                    log.info(
                        "haproxy", message=self._parser.message(datagram).decode(errors="replace")
                    )
                else:
                    malformed += 1
        finally:
            if received:
                self.last_received = now
            counters = self.counters
            counters.received += received
            counters.parsed += parsed
            counters.events += events
            counters.malformed += malformed

    def _sink_error(self, err: Exception) -> None:
        self.counters.sink_errors += 1
        if not self._sink_failed:
            self._sink_failed = True
            log.error("request_sink_failed", error=repr(err))


def _warn_short_queue() -> None:
    """Say when the kernel's queue for our socket is short enough to drop lines under load.

    The limit is ``net.unix.max_dgram_qlen`` of the network namespace that created the socket
    (ours): 10 by default, 512 where systemd's sysctl defaults apply. In a container, set it
    with ``sysctls:`` in the compose file.
    """
    try:
        qlen = int(_QLEN_SYSCTL.read_text())
    except (OSError, ValueError):
        return
    if qlen < RECOMMENDED_QLEN:
        log.warning(
            "log_queue_short",
            reason="the kernel queues only a few log lines for watchdogd: HAProxy will drop "
            "some under load (counted); set net.unix.max_dgram_qlen to 512 or more",
            max_dgram_qlen=qlen,
        )
