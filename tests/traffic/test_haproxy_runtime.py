"""The Runtime API client against a real HAProxy: reading servers, changing them, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from tests.support.haproxy import HAProxyFactory, StaticServer
from tests.traffic.conftest import ReleaseApp
from watchdogd.errors import TrafficError
from watchdogd.traffic.haproxy import HAProxyRuntime

pytestmark = pytest.mark.haproxy

AppFactory = Callable[[str], Awaitable[ReleaseApp]]


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def _served_by(url: str, count: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            status, body = await _get(session, url)
            assert status == 200
            seen[body] = seen.get(body, 0) + 1
    return seen


class TestReading:
    async def test_servers_lists_static_slots(self, haproxy_factory: HAProxyFactory) -> None:
        """show stat becomes one ServerStatus per server, with the slot's address and weight."""
        proxy = haproxy_factory(
            [StaticServer("blue", 18101, weight=100), StaticServer("green", 18102, disabled=True)]
        )
        servers = await HAProxyRuntime(proxy.admin_socket).servers("app")
        assert set(servers) == {"blue", "green"}
        blue, green = servers["blue"], servers["green"]
        assert (blue.address, blue.port, blue.weight) == ("127.0.0.1", 18101, 100)
        assert not blue.admin_maint
        assert blue.state == "no check"
        assert green.admin_maint
        assert green.state == "MAINT"

    async def test_counts_requests_and_5xx_per_server(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """Per-server counters count what went through HAProxy, 5xx apart."""
        blue = await release_app("blue")
        blue.status = 503
        proxy = haproxy_factory([StaticServer("blue", blue.port)])
        async with aiohttp.ClientSession() as session:
            for _ in range(7):
                assert (await _get(session, proxy.url))[0] == 503
        status = (await HAProxyRuntime(proxy.admin_socket).servers("app"))["blue"]
        assert status.requests_total == 7
        assert status.responses_5xx == 7

    async def test_info_gives_pid(self, haproxy_factory: HAProxyFactory) -> None:
        """show info is parsed into its fields."""
        proxy = haproxy_factory([StaticServer("blue", 18103)])
        info = await HAProxyRuntime(proxy.admin_socket).info()
        assert int(info["Pid"]) > 0
        assert "DroppedLogs" in info


class TestChanging:
    async def test_set_address_moves_a_server(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """set_address re-points a server; its requests go to the new place at once."""
        old, new = await release_app("old"), await release_app("new")
        proxy = haproxy_factory([StaticServer("blue", old.port)])
        runtime = HAProxyRuntime(proxy.admin_socket)
        await runtime.set_address("app", "blue", "127.0.0.1", new.port)
        assert (await runtime.servers("app"))["blue"].port == new.port
        assert await _served_by(proxy.url, 4) == {"new": 4}
        await runtime.set_address("app", "blue", "127.0.0.1", new.port)  # no change: fine

    async def test_dynamic_server_takes_traffic_once_ready(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """add_server starts in maintenance at weight 0; weight + ready sends it requests."""
        blue, green = await release_app("blue"), await release_app("green")
        proxy = haproxy_factory([StaticServer("blue", blue.port)])
        runtime = HAProxyRuntime(proxy.admin_socket)
        await runtime.add_server("app", "green", "127.0.0.1", green.port)
        added = (await runtime.servers("app"))["green"]
        assert (added.weight, added.admin_maint, added.port) == (0, True, green.port)
        assert await _served_by(proxy.url, 10) == {"blue": 10}

        await runtime.set_weight("app", "green", 100)
        await runtime.set_state("app", "green", "ready")
        assert await _served_by(proxy.url, 10) == {"blue": 5, "green": 5}

        await runtime.set_weight("app", "blue", 0)
        assert await _served_by(proxy.url, 6) == {"green": 6}

    async def test_drain_then_maint_then_delete(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """A drained server gets no new request; a dynamic one in maintenance can be deleted."""
        blue, green = await release_app("blue"), await release_app("green")
        proxy = haproxy_factory([StaticServer("blue", blue.port)])
        runtime = HAProxyRuntime(proxy.admin_socket)
        await runtime.add_server("app", "green", "127.0.0.1", green.port)
        await runtime.set_weight("app", "green", 50)
        await runtime.set_state("app", "green", "ready")
        await runtime.set_state("app", "green", "drain")
        assert (await runtime.servers("app"))["green"].admin_drain
        assert await _served_by(proxy.url, 6) == {"blue": 6}

        assert await runtime.wait_idle("app", "green", timeout=5)
        await runtime.delete_server("app", "green")
        assert set(await runtime.servers("app")) == {"blue"}

    async def test_wait_idle_waits_for_the_request_in_flight(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """wait_idle is False while a slow request is open and True once it finished."""
        blue = await release_app("blue")
        blue.delay = 1.0
        proxy = haproxy_factory([StaticServer("blue", blue.port)])
        runtime = HAProxyRuntime(proxy.admin_socket)
        async with aiohttp.ClientSession() as session:
            slow = asyncio.create_task(_get(session, proxy.url))
            await blue.entered.wait()
            assert not await runtime.wait_idle("app", "blue", timeout=0.1)
            assert await slow == (200, "blue")
        assert await runtime.wait_idle("app", "blue", timeout=5)


class TestRefusals:
    async def test_haproxy_refusals_raise_with_its_reason(
        self, haproxy_factory: HAProxyFactory
    ) -> None:
        """HAProxy's own error text reaches the TrafficError; nothing is changed."""
        proxy = haproxy_factory([StaticServer("blue", 18104)])
        runtime = HAProxyRuntime(proxy.admin_socket)
        with pytest.raises(TrafficError, match="No such server") as refused:
            await runtime.set_weight("app", "nobody", 10)
        assert not refused.value.unreachable
        with pytest.raises(TrafficError, match="No such proxy"):
            await runtime.servers("nobackend")
        with pytest.raises(TrafficError, match="Already exists"):
            await runtime.add_server("app", "blue", "127.0.0.1", 18105)
        with pytest.raises(TrafficError, match="Only servers in maintenance"):
            await runtime.execute("del server app/blue")
        with pytest.raises(TrafficError, match="unknown command"):
            await runtime.execute("frobnicate")
        with pytest.raises(TrafficError, match="No such server"):
            await runtime.set_address("app", "nobody", "127.0.0.1", 18105)
        with pytest.raises(TrafficError, match="Invalid addr"):
            await runtime.set_address("app", "blue", "not.an.address", 18105)
        blue = (await runtime.servers("app"))["blue"]
        assert (blue.weight, blue.port) == (100, 18104)

    async def test_bad_arguments_never_reach_haproxy(self, haproxy_factory: HAProxyFactory) -> None:
        """Out-of-range weights and names that would smuggle a second command are refused."""
        proxy = haproxy_factory([StaticServer("blue", 18106)])
        runtime = HAProxyRuntime(proxy.admin_socket)
        with pytest.raises(TrafficError, match=r"0\.\.256"):
            await runtime.set_weight("app", "blue", 257)
        with pytest.raises(TrafficError, match="HAProxy names"):
            await runtime.set_weight("app", "blue weight 0; set server app/blue", 1)
        with pytest.raises(TrafficError, match="one command per call"):
            await runtime.execute("show info; show stat")
        with pytest.raises(TrafficError, match="bad address"):
            await runtime.set_address("app", "blue", "127.0.0.1 port 1; del server", 80)
        with pytest.raises(TrafficError, match="bad address"):
            await runtime.set_address("app", "blue", "127.0.0.1", 70000)
        assert (await runtime.servers("app"))["blue"].weight == 100

    async def test_unreachable_socket(self, haproxy_factory: HAProxyFactory) -> None:
        """A stopped HAProxy is a TrafficError marked unreachable, naming the socket."""
        proxy = haproxy_factory([StaticServer("blue", 18107)])
        proxy.stop()
        runtime = HAProxyRuntime(proxy.admin_socket, timeout=0.5)
        with pytest.raises(TrafficError, match="cannot reach") as unreachable:
            await runtime.servers("app")
        assert unreachable.value.unreachable
        assert str(proxy.admin_socket) in str(unreachable.value)
