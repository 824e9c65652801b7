"""The reconciler against a real HAProxy: a restart or a hand edit is put back, and said."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from tests.support.haproxy import HAProxyFactory, HAProxyServer, StaticServer
from tests.traffic.conftest import Load, ReleaseApp
from watchdogd.traffic.counters import TrafficCounters
from watchdogd.traffic.haproxy import HAProxyRuntime
from watchdogd.traffic.split import SplitReconciler, TrafficSplit, split_differences

AppFactory = Callable[[str], Awaitable[ReleaseApp]]


async def _switched_to_green(
    haproxy_factory: HAProxyFactory, release_app: AppFactory
) -> tuple[HAProxyServer, SplitReconciler, TrafficSplit, ReleaseApp]:
    """HAProxy with a static blue and a dynamic green that has all the traffic."""
    blue, green = await release_app("blue"), await release_app("green")
    proxy = haproxy_factory([StaticServer("blue", blue.port)])
    reconciler = SplitReconciler(HAProxyRuntime(proxy.admin_socket, timeout=0.5))
    split = TrafficSplit(
        "app", {"blue": 0, "green": 100}, addresses={"green": ("127.0.0.1", green.port)}
    )
    await reconciler.apply(split)
    return proxy, reconciler, split, green


@pytest.mark.haproxy
class TestReconcile:
    async def test_nothing_to_do_when_the_split_is_in_effect(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """A split HAProxy serves is left alone and counted nowhere."""
        _, reconciler, _, _ = await _switched_to_green(haproxy_factory, release_app)
        assert await reconciler.reconcile() == []
        assert reconciler.counters.restored == {}

    async def test_haproxy_restart_is_put_back(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """After a restart HAProxy serves blue again; reconcile re-adds green and drains blue."""
        proxy, reconciler, split, green = await _switched_to_green(haproxy_factory, release_app)
        proxy.restart()
        runtime = reconciler.runtime
        assert split_differences(split, await runtime.servers("app")) == [
            "blue: no check, want maintenance",
            "green: missing",
        ]
        with capture_logs() as logs:
            assert await reconciler.reconcile() == ["app"]
        assert split_differences(split, await runtime.servers("app")) == []
        restored = [e for e in logs if e["event"] == "traffic_split_restored"]
        assert [(e["backend"], e["reason"]) for e in restored] == [("app", "haproxy restarted")]
        assert reconciler.counters.restored["app"] == 1
        async with Load(proxy.url, workers=2) as load:
            await load.until(20)
        assert set(load.answers) == {(200, "green")}
        assert green.served >= 20
        assert await reconciler.reconcile() == []

    async def test_a_hand_edit_is_put_back(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """Someone re-enabling blue by hand is undone and reported as such."""
        proxy, reconciler, split, _ = await _switched_to_green(haproxy_factory, release_app)
        proxy.command("set server app/blue state ready")
        with capture_logs() as logs:
            assert await reconciler.reconcile() == ["app"]
        lost = [e for e in logs if e["event"] == "traffic_split_lost"]
        assert lost[0]["reason"] == "changed outside watchdogd"
        assert lost[0]["differences"] == ["blue: no check, want maintenance"]
        assert split_differences(split, await reconciler.runtime.servers("app")) == []

    async def test_unreachable_then_back(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """While HAProxy is down reconcile reports it once and raises nothing; once back, the
        split is restored."""
        proxy, reconciler, _, _ = await _switched_to_green(haproxy_factory, release_app)
        proxy.stop()
        with capture_logs() as logs:
            assert await reconciler.reconcile() == []
            assert await reconciler.reconcile() == []
        assert [e["event"] for e in logs] == ["haproxy_servers_unreadable"]
        proxy.start()
        with capture_logs() as logs:
            assert await reconciler.reconcile() == ["app"]
        assert "haproxy_reachable_again" in [e["event"] for e in logs]

    async def test_never_restores_during_a_switch(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """While apply() is switching (blue draining a slow request), reconcile keeps out."""
        blue, green = await release_app("blue"), await release_app("green")
        blue.delay = 0.5
        proxy = haproxy_factory([StaticServer("blue", blue.port)])
        reconciler = SplitReconciler(HAProxyRuntime(proxy.admin_socket))
        reconciler.want(TrafficSplit("app", {"blue": 100}))
        split = TrafficSplit(
            "app", {"blue": 0, "green": 100}, addresses={"green": ("127.0.0.1", green.port)}
        )
        async with aiohttp.ClientSession() as session, session.get(proxy.url) as slow:
            await blue.entered.wait()
            switching = asyncio.create_task(reconciler.apply(split))
            await asyncio.sleep(0)  # the switch takes the backend's lock, then waits on HAProxy
            assert await reconciler.reconcile() == []
            assert await slow.text() == "blue"
            await switching
        assert await reconciler.reconcile() == []
        assert reconciler.counters.restored == {}
        assert split_differences(split, await reconciler.runtime.servers("app")) == []

    async def test_a_server_follows_its_release_to_a_new_port(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """A split that gives green a new address points green there (as after its container
        restarted on another published port), and a hand edit of the address is undone."""
        proxy, reconciler, _, green = await _switched_to_green(haproxy_factory, release_app)
        moved = await release_app("green-moved")
        split = TrafficSplit(
            "app", {"blue": 0, "green": 100}, addresses={"green": ("127.0.0.1", moved.port)}
        )
        runtime = reconciler.runtime
        assert split_differences(split, await runtime.servers("app")) == [
            f"green: at 127.0.0.1:{green.port}, want 127.0.0.1:{moved.port}"
        ]
        await reconciler.apply(split)
        assert (await runtime.servers("app"))["green"].port == moved.port
        async with Load(proxy.url, workers=2) as load:
            await load.until(10)
        assert set(load.answers) == {(200, "green-moved")}

        proxy.command("set server app/green addr 127.0.0.1 port 1")
        with capture_logs() as logs:
            assert await reconciler.reconcile() == ["app"]
        lost = [e for e in logs if e["event"] == "traffic_split_lost"]
        assert lost[0]["differences"] == [f"green: at 127.0.0.1:1, want 127.0.0.1:{moved.port}"]
        assert (await runtime.servers("app"))["green"].port == moved.port

    async def test_forgotten_backends_are_left_alone(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """After forget, a restart is not undone."""
        proxy, reconciler, _, _ = await _switched_to_green(haproxy_factory, release_app)
        reconciler.forget("app")
        proxy.restart()
        assert await reconciler.reconcile() == []
        assert "green" not in await reconciler.runtime.servers("app")


@pytest.mark.haproxy
class TestCounters:
    async def test_restores_appear_as_prometheus_counters(
        self, haproxy_factory: HAProxyFactory, release_app: AppFactory
    ) -> None:
        """The shared counters, registered as a collector, expose the restore by backend."""
        proxy, reconciler, _, _ = await _switched_to_green(haproxy_factory, release_app)
        registry = CollectorRegistry()
        registry.register(reconciler.counters)
        proxy.restart()
        await reconciler.reconcile()
        text = generate_latest(registry).decode()
        assert 'watchdogd_traffic_restored_total{backend="app"} 1.0' in text
        assert 'watchdogd_traffic_log_datagrams_total{result="malformed"} 0.0' in text


def test_counters_render_without_any_traffic() -> None:
    """A fresh TrafficCounters renders every family, with zeros where nothing happened."""
    registry = CollectorRegistry()
    registry.register(TrafficCounters())
    text = generate_latest(registry).decode()
    for name in (
        "watchdogd_traffic_restored_total",
        "watchdogd_traffic_switch_retries_total",
        "watchdogd_traffic_switch_failures_total",
        "watchdogd_traffic_log_datagrams_total",
        "watchdogd_traffic_log_sink_errors_total 0.0",
        "watchdogd_traffic_log_dropped_total 0.0",
    ):
        assert name in text
