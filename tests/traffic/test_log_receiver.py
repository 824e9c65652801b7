"""The request log: HAProxy's datagrams become one sample per request, with server, status and
timings; what is not a request is counted, never passed on."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from tests.support.haproxy import HAProxyFactory, StaticServer
from tests.traffic.conftest import ReleaseApp
from watchdogd.errors import TrafficError
from watchdogd.traffic import log_receiver
from watchdogd.traffic.counters import TrafficCounters
from watchdogd.traffic.haproxy import HAProxyRuntime
from watchdogd.traffic.log_line import LineKind, LogLineParser, RequestLine
from watchdogd.traffic.log_receiver import HAProxyLogReceiver

AppFactory = Callable[[str], Awaitable[ReleaseApp]]
MAX_DGRAM_QLEN = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())


@dataclass(frozen=True)
class Sample:
    backend: str
    server: str
    now: float
    status: int
    response_time_s: float


class Recorder:
    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.changed = asyncio.Event()

    def __call__(
        self, backend: str, server: str, now: float, status: int, response_time_s: float
    ) -> None:
        self.samples.append(Sample(backend, server, now, status, response_time_s))
        self.changed.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Sample]:
        async with asyncio.timeout(timeout):
            while len(self.samples) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.samples


class TestParser:
    """The line format, framings and garbage, without HAProxy."""

    def test_rfc3164_line(self) -> None:
        """The default framing: syslog header, then the documented fields."""
        line = LogLineParser().parse(
            b"<134>Nov 30 13:28:47 haproxy[9675]: app/green 200 9 12 ----\n"
        )
        assert line == RequestLine("app", "green", 200, 9, 12, "----")

    def test_short_and_raw_framings(self) -> None:
        """`format short` and `format raw` parse the same."""
        parser = LogLineParser()
        assert parser.parse(b"<134>app/blue 503 -1 3001 sH--") == RequestLine(
            "app", "blue", 503, -1, 3001, "sH--"
        )
        assert parser.parse(b"app/blue 200 1 2 ----\n") == RequestLine(
            "app", "blue", 200, 1, 2, "----"
        )

    def test_events_and_garbage(self) -> None:
        """HAProxy's own messages are events; anything else is malformed."""
        parser = LogLineParser()
        event = b"<133>Nov 30 13:28:47 haproxy[1]: Server app/green is going DOWN for maintenance."
        assert parser.parse(event) == LineKind.EVENT
        for garbage in (
            b"",
            b"<134>Nov 30 13:28:47 haproxy[1]: hello",
            b"<134>x: app/blue two 1 2 ----",
            b"<134>x: appblue 200 1 2 ----",
            b"<134>x: app/blue 200 1 -1 ----",
            b"\xff\xfe/\x00 200 1 2 ----",
        ):
            assert parser.parse(garbage) == LineKind.MALFORMED, garbage


async def _send(path: Path, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            sock.sendto(datagram, str(path))


class TestReceiverAlone:
    async def test_counts_every_kind(self, tmp_path: Path) -> None:
        """received = parsed + events + malformed; only requests reach the sink."""
        recorder = Recorder()
        counters = TrafficCounters()
        receiver = HAProxyLogReceiver(tmp_path / "log.sock", recorder, counters=counters.log)
        await receiver.start()
        assert receiver.last_received is None
        try:
            await _send(
                receiver.socket_path,
                b"<134>Nov 30 13:28:47 haproxy[1]: app/blue 200 4 5 ----\n",
                b"<133>Nov 30 13:28:47 haproxy[1]: Server app/blue is UP.\n",
                b"not a log line",
                b"<134>Nov 30 13:28:47 haproxy[1]: app/green 500 10 2500 ----\n",
            )
            # Sent before the loop ran again: one wakeup reads all four.
            samples = await recorder.wait_for(2)
        finally:
            await receiver.close()
        assert receiver.last_received == samples[0].now
        assert [(s.server, s.status, s.response_time_s) for s in samples] == [
            ("blue", 200, 0.005),
            ("green", 500, 2.5),
        ]
        log = counters.log
        assert (log.received, log.parsed, log.events, log.malformed) == (4, 2, 1, 1)
        assert not receiver.socket_path.exists()

    async def test_a_failing_sink_is_counted_and_reading_goes_on(self, tmp_path: Path) -> None:
        """A sink that raises loses its line, counted; the next lines still arrive."""
        seen: list[str] = []
        both = asyncio.Event()

        def sink(backend: str, server: str, now: float, status: int, seconds: float) -> None:
            seen.append(server)
            if len(seen) == 2:
                both.set()
            if server == "bad":
                raise RuntimeError("bug")

        receiver = HAProxyLogReceiver(tmp_path / "log.sock", sink)
        await receiver.start()
        try:
            await _send(receiver.socket_path, b"app/bad 200 1 1 ----", b"app/good 200 1 1 ----")
            async with asyncio.timeout(5):
                await both.wait()
        finally:
            await receiver.close()
        assert seen == ["bad", "good"]
        assert receiver.counters.sink_errors == 1

    async def test_warns_when_the_kernel_queue_is_short(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Below 512 queued datagrams HAProxy will drop lines under load: start says so."""
        sysctl = tmp_path / "max_dgram_qlen"
        monkeypatch.setattr(log_receiver, "_QLEN_SYSCTL", sysctl)
        for qlen, warned in (("10\n", True), ("512\n", False)):
            sysctl.write_text(qlen)
            receiver = HAProxyLogReceiver(tmp_path / "log.sock", Recorder())
            with capture_logs() as logs:
                await receiver.start()
            await receiver.close()
            warnings = [e for e in logs if e.get("max_dgram_qlen") == 10]
            assert bool(warnings) is warned

    async def test_refuses_to_replace_a_file_that_is_not_a_socket(self, tmp_path: Path) -> None:
        """A config pointing the socket at a regular file fails loudly and leaves the file."""
        path = tmp_path / "precious.txt"
        path.write_text("keep me")
        with pytest.raises(TrafficError, match="not a socket"):
            await HAProxyLogReceiver(path, Recorder()).start()
        assert path.read_text() == "keep me"


@pytest.mark.haproxy
class TestReceiverWithHAProxy:
    async def test_one_sample_per_request_with_server_status_and_timing(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """Requests through HAProxy arrive one each, naming the server that answered."""
        blue, green = await release_app("blue"), await release_app("green")
        green.status, green.delay = 503, 0.2
        proxy = haproxy_factory(
            [StaticServer("blue", blue.port), StaticServer("green", green.port)]
        )
        recorder = Recorder()
        receiver = HAProxyLogReceiver(proxy.log_socket, recorder)
        await receiver.start()
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(10):
                    async with session.get(proxy.url) as response:
                        await response.read()
            samples = await recorder.wait_for(10)
        finally:
            await receiver.close()
        assert len(samples) == 10
        by_server: dict[str, list[Sample]] = {"blue": [], "green": []}
        for sample in samples:
            by_server[sample.server].append(sample)
        assert len(by_server["blue"]) == len(by_server["green"]) == 5
        assert {(s.backend, s.status) for s in by_server["blue"]} == {("app", 200)}
        assert {(s.backend, s.status) for s in by_server["green"]} == {("app", 503)}
        assert all(s.response_time_s >= 0.2 for s in by_server["green"])
        assert all(s.response_time_s < 0.2 for s in by_server["blue"])
        assert receiver.counters.malformed == 0
        assert blue.served + green.served == 10

    async def test_drops_are_read_from_haproxy(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory, tmp_path: Path
    ) -> None:
        """Lines HAProxy could not queue (a reader that stalled) are counted as dropped, exactly."""
        blue = await release_app("blue")
        proxy = haproxy_factory([StaticServer("blue", blue.port)])
        receiver = HAProxyLogReceiver(
            tmp_path / "unused.sock", Recorder(), runtime=HAProxyRuntime(proxy.admin_socket)
        )
        await receiver.start()  # reads the baseline
        requests = MAX_DGRAM_QLEN + 40  # more than the kernel queues for an unread socket
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stalled:
            stalled.bind(str(proxy.log_socket))  # bound, never read: its queue fills up
            async with aiohttp.ClientSession() as session:
                for _ in range(requests):
                    async with session.get(proxy.url) as response:
                        await response.read()
            stalled.setblocking(False)
            queued = 0
            while True:
                try:
                    stalled.recv(4096)
                except BlockingIOError:
                    break
                queued += 1
        try:
            assert 0 < queued < requests
            assert await receiver.poll_dropped() == requests - queued
            assert receiver.counters.dropped == requests - queued
        finally:
            await receiver.close()
