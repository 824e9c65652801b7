"""docs/blue-green.md's HAProxy config is real: HAProxy runs it, and watchdogd switches
traffic through it and reads its request log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.docs.doc_pages import DOCS, blocks
from tests.support.haproxy import HAProxyFactory
from tests.traffic.conftest import Load, ReleaseApp
from watchdogd.traffic.haproxy import HAProxyRuntime
from watchdogd.traffic.log_line import LOG_FORMAT
from watchdogd.traffic.log_receiver import HAProxyLogReceiver
from watchdogd.traffic.split import TrafficSplit, apply_split

PAGE = DOCS / "blue-green.md"
AppFactory = Callable[[str], Awaitable[ReleaseApp]]


def _documented_config() -> str:
    configs = [b.text for b in blocks(PAGE) if b.language == "text" and b.text.startswith("global")]
    assert len(configs) == 1, "docs/blue-green.md shows one whole HAProxy config"
    return configs[0]


def test_the_page_shows_watchdogds_log_format() -> None:
    """Every log-format line on the page is the one the parser reads."""
    lines = [line.strip() for line in PAGE.read_text().splitlines() if "log-format" in line]
    formats = [line for line in lines if line.startswith("log-format")]
    assert formats
    assert set(formats) == {f'log-format "{LOG_FORMAT}"'}


@pytest.mark.haproxy
async def test_documented_config_runs_a_switch(
    haproxy_factory: HAProxyFactory, release_app: AppFactory
) -> None:
    """HAProxy accepts the documented config; green takes over with every request answered
    and logged by the release that served it."""
    blue, green = await release_app("blue"), await release_app("green")
    template = (
        _documented_config()
        .replace("{", "{{")
        .replace("}", "}}")
        .replace("/run/haproxy/admin.sock", "{admin_socket}")
        .replace(" group watchdogd", "")  # the test runs as whoever it is
        .replace("/run/watchdogd/haproxy-log.sock", "{log_socket}")
        .replace("bind :80", "bind 127.0.0.1:{port}")
        .replace("127.0.0.1:8081", f"127.0.0.1:{blue.port}")
        .replace("127.0.0.1:8082", f"127.0.0.1:{green.port}")
    )
    proxy = haproxy_factory(template=template)
    served: dict[str, int] = {}
    logged = asyncio.Event()

    def sink(backend: str, server: str, now: float, status: int, seconds: float) -> None:
        assert (backend, status) == ("app", 200)
        served[server] = served.get(server, 0) + 1
        logged.set()

    receiver = HAProxyLogReceiver(proxy.log_socket, sink)
    await receiver.start()
    try:
        # One client at a time: the receiver shares this event loop, and a burst of lines
        # longer than the kernel's queue (10 by default) would be dropped, not logged.
        async with Load(proxy.url, workers=1) as load:
            await load.until(50)
            await apply_split(
                HAProxyRuntime(proxy.admin_socket), TrafficSplit("app", {"blue": 0, "green": 100})
            )
            await load.until(load.total + 50)
        async with asyncio.timeout(10):
            while sum(served.values()) < load.total:
                logged.clear()
                await logged.wait()
    finally:
        await receiver.close()
    assert load.failures == {}
    assert served == {"blue": blue.served, "green": green.served}
    assert green.served > 0
    assert receiver.counters.malformed == 0
