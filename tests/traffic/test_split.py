"""Traffic switches against a real HAProxy: order, load, failures and verification."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.support.haproxy import HAProxyFactory, HAProxyServer, StaticServer
from tests.traffic.conftest import Load, ReleaseApp
from watchdogd.errors import TrafficError
from watchdogd.traffic.counters import TrafficCounters
from watchdogd.traffic.haproxy import HAProxyRuntime, ServerStatus
from watchdogd.traffic.split import TrafficSplit, apply_split, split_differences

AppFactory = Callable[[str], Awaitable[ReleaseApp]]


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


def _status(name: str, *, weight: int, state: str) -> ServerStatus:
    return ServerStatus(
        backend="app",
        name=name,
        address="127.0.0.1",
        port=1,
        weight=weight,
        state=state,
        admin_maint=state.startswith("MAINT"),
        requests_total=0,
        responses_5xx=0,
        current_sessions=0,
    )


class TestSplitValues:
    """The split itself and its comparison with HAProxy's servers (pure)."""

    def test_weights_are_checked(self) -> None:
        """Weights outside 0..256, or nobody receiving, are refused at construction."""
        with pytest.raises(ValueError, match=r"0\.\.256"):
            TrafficSplit("app", {"blue": 257})
        with pytest.raises(ValueError, match="must send traffic"):
            TrafficSplit("app", {"blue": 0, "green": 0})

    def test_differences(self) -> None:
        """Receivers must be ready at their weight; the others in maintenance; all present."""
        split = TrafficSplit("app", {"blue": 0, "green": 100, "red": 0})
        servers = {
            "blue": _status("blue", weight=100, state="DRAIN"),
            "green": _status("green", weight=10, state="MAINT"),
        }
        assert split_differences(split, servers) == [
            "blue: DRAIN, want maintenance",
            "green: MAINT, want ready",
            "green: weight 10, want 100",
            "red: missing",
        ]
        in_effect = {
            "blue": _status("blue", weight=100, state="MAINT"),
            "green": _status("green", weight=100, state="UP"),
            "red": _status("red", weight=0, state="MAINT"),
        }
        assert split_differences(split, in_effect) == []


async def _blue_green(
    haproxy_factory: HAProxyFactory, release_app: AppFactory, **green: Any
) -> tuple[HAProxyServer, ReleaseApp, ReleaseApp]:
    blue, green_app = await release_app("blue"), await release_app("green")
    proxy = haproxy_factory([StaticServer("blue", blue.port, **green)])
    return proxy, blue, green_app


def _to_green(green: ReleaseApp) -> TrafficSplit:
    return TrafficSplit(
        "app", {"blue": 0, "green": 100}, addresses={"green": ("127.0.0.1", green.port)}
    )


@pytest.mark.haproxy
class TestApplySplit:
    async def test_switch_under_load_loses_no_request(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """Blue to green and back while clients hammer HAProxy: every response is a 200."""
        proxy, blue, green = await _blue_green(haproxy_factory, release_app)
        blue.delay = green.delay = 0.02  # requests are in flight when the drain starts
        runtime = HAProxyRuntime(proxy.admin_socket)
        back = TrafficSplit("app", {"blue": 100, "green": 0})
        async with Load(proxy.url, workers=8) as load:
            await load.until(100)
            await apply_split(runtime, _to_green(green))
            servers = await runtime.servers("app")
            assert servers["blue"].admin_maint
            assert servers["green"].weight == 100
            blue_before = blue.served
            await load.until(load.total + 100)
            assert blue.served == blue_before  # nothing new reached blue after the switch
            await apply_split(runtime, back)
            await load.until(load.total + 100)
        assert load.failures == {}
        assert set(load.answers) == {(200, "blue"), (200, "green")}
        assert load.total == blue.served + green.served

    async def test_standby_keeps_blue_checked_for_an_immediate_switch_back(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """A standby server is drained at weight 0, not in maintenance, and gets no request."""
        blue, green = await release_app("blue"), await release_app("green")
        proxy = haproxy_factory(
            [
                StaticServer("blue", blue.port, check=True),
                StaticServer("green", green.port, weight=1, disabled=True, check=True),
            ]
        )
        runtime = HAProxyRuntime(proxy.admin_socket)
        bake = TrafficSplit("app", {"blue": 0, "green": 100}, standby=frozenset({"blue"}))
        async with Load(proxy.url, workers=4) as load:
            await load.until(50)
            await apply_split(runtime, bake)
            servers = await runtime.servers("app")
            assert servers["blue"].weight == 0
            assert not servers["blue"].admin_maint
            assert split_differences(bake, servers) == []
            blue_before = blue.served
            await load.until(load.total + 50)
            assert blue.served == blue_before
            await apply_split(runtime, TrafficSplit("app", {"blue": 100, "green": 0}))
            await load.until(load.total + 50)
        assert load.failures == {}
        assert set(load.answers) == {(200, "blue"), (200, "green")}

    async def test_a_request_outliving_the_drain_timeout_still_finishes(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """Maintenance after the drain timeout does not cut a request still running on blue."""
        proxy, blue, green = await _blue_green(haproxy_factory, release_app)
        blue.delay = 1.0
        async with aiohttp.ClientSession() as session:
            slow = asyncio.create_task(_get(session, proxy.url))
            await blue.entered.wait()
            await apply_split(
                HAProxyRuntime(proxy.admin_socket), _to_green(green), drain_timeout=0.1
            )
            assert (await HAProxyRuntime(proxy.admin_socket).servers("app"))["blue"].admin_maint
            assert await slow == (200, "blue")
            assert await _get(session, proxy.url) == (200, "green")

    async def test_no_switch_back_to_a_standby_that_died(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """A standby blue stays health-checked: once it is DOWN, a switch back to it raises and
        green keeps serving."""
        blue, green = await release_app("blue"), await release_app("green")
        proxy = haproxy_factory(
            [
                StaticServer("blue", blue.port, check=True),
                StaticServer("green", green.port, weight=1, disabled=True, check=True),
            ]
        )
        runtime = HAProxyRuntime(proxy.admin_socket)
        await apply_split(
            runtime, TrafficSplit("app", {"blue": 0, "green": 100}, standby=frozenset({"blue"}))
        )
        assert blue.runner is not None
        await blue.runner.cleanup()  # blue dies during the bake
        for _ in range(200):
            if (await runtime.servers("app"))["blue"].state.startswith("DOWN"):
                break
            await asyncio.sleep(0.05)
        with pytest.raises(TrafficError, match="no receiver is up"):
            await apply_split(
                runtime,
                TrafficSplit("app", {"blue": 100, "green": 0}),
                attempts=1,
                ready_timeout=0.5,
            )
        green_status = (await runtime.servers("app"))["green"]
        assert green_status.weight == 100
        assert not green_status.admin_drain
        async with aiohttp.ClientSession() as session:
            assert await _get(session, proxy.url) == (200, "green")

    async def test_reads_back_what_it_applied(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """After a split, HAProxy's servers match it exactly; a second apply changes nothing."""
        proxy, _, green = await _blue_green(haproxy_factory, release_app)
        runtime = HAProxyRuntime(proxy.admin_socket)
        split = TrafficSplit(
            "app", {"blue": 20, "green": 80}, addresses={"green": ("127.0.0.1", green.port)}
        )
        await apply_split(runtime, split)
        await apply_split(runtime, split)
        servers = await runtime.servers("app")
        assert split_differences(split, servers) == []
        assert (servers["blue"].weight, servers["green"].weight) == (20, 80)

    async def test_a_down_receiver_drains_nothing(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """Switching to a server whose health check fails raises and leaves blue serving."""
        blue = await release_app("blue")
        proxy = haproxy_factory(
            [
                StaticServer("blue", blue.port),
                StaticServer("green", 1, weight=1, disabled=True, check=True),  # nothing on :1
            ]
        )
        runtime = HAProxyRuntime(proxy.admin_socket)
        counters = TrafficCounters()
        with pytest.raises(TrafficError, match="no receiver is up") as failed:
            await apply_split(
                runtime,
                TrafficSplit("app", {"blue": 0, "green": 100}),
                attempts=2,
                backoff=0.01,
                ready_timeout=1.0,
                counters=counters,
            )
        assert "not applied after 2 attempts" in str(failed.value)
        blue_status = (await runtime.servers("app"))["blue"]
        assert not blue_status.admin_maint
        assert not blue_status.admin_drain
        assert blue_status.weight == 100
        assert (counters.switch_retries["app"], counters.switch_failures["app"]) == (1, 1)

    async def test_unreachable_haproxy_is_retried_then_raised(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """With HAProxy gone, every attempt fails; the error says so and is marked unreachable."""
        proxy, _, green = await _blue_green(haproxy_factory, release_app)
        proxy.stop()
        counters = TrafficCounters()
        with pytest.raises(TrafficError, match="not applied after 3 attempts") as failed:
            await apply_split(
                HAProxyRuntime(proxy.admin_socket, timeout=0.5),
                _to_green(green),
                attempts=3,
                backoff=0.01,
                counters=counters,
            )
        assert failed.value.unreachable
        assert (counters.switch_retries["app"], counters.switch_failures["app"]) == (2, 1)

    async def test_haproxy_lost_mid_switch_is_never_reported_done(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """HAProxy dies after green was enabled and before blue was drained: the switch raises."""
        proxy, _, green = await _blue_green(haproxy_factory, release_app)
        runtime = _DiesBeforeDrain(proxy)
        with pytest.raises(TrafficError, match="not applied"):
            await apply_split(runtime, _to_green(green), attempts=3, backoff=0.01)
        assert runtime.drains_seen == 1

    async def test_haproxy_restarted_mid_switch_is_finished_by_a_retry(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """A restart mid-switch forgets the dynamic green; the retry adds it again and verifies."""
        proxy, _, green = await _blue_green(haproxy_factory, release_app)
        runtime = _RestartsBeforeDrain(proxy)
        split = _to_green(green)
        await apply_split(runtime, split, attempts=3, backoff=0.01)
        assert runtime.restarts == 1
        assert split_differences(split, await runtime.servers("app")) == []


class _DiesBeforeDrain(HAProxyRuntime):
    """The real runtime, but HAProxy is stopped when the first drain is about to be sent."""

    def __init__(self, proxy: HAProxyServer) -> None:
        super().__init__(proxy.admin_socket, timeout=0.5)
        self.proxy = proxy
        self.drains_seen = 0

    async def set_state(self, backend: str, name: str, state: Any) -> None:
        if state == "drain":
            self.drains_seen += 1
            if self.drains_seen == 1:
                self.proxy.stop()
        await super().set_state(backend, name, state)


class _RestartsBeforeDrain(HAProxyRuntime):
    def __init__(self, proxy: HAProxyServer) -> None:
        super().__init__(proxy.admin_socket)
        self.proxy = proxy
        self.restarts = 0

    async def set_state(self, backend: str, name: str, state: Any) -> None:
        if state == "drain" and self.restarts == 0:
            self.restarts += 1
            self.proxy.restart()
        await super().set_state(backend, name, state)
