"""The PromQL source against a real Prometheus server scraping a local aiohttp app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from tests.sources.test_source_http import RecordingSink
from tests.support.services import PrometheusServer
from watchdogd.config.schema import PromqlCheck
from watchdogd.config.validation import parse
from watchdogd.sources.probe_client import ProbeClient, open_probe_client
from watchdogd.sources.promql import PromqlSource

# One event loop, exporter and Prometheus for the module: starting Prometheus and waiting
# for its first scrape is most of the cost of these tests.
pytestmark = [pytest.mark.prometheus, pytest.mark.asyncio(loop_scope="module")]

GAUGES = """\
# TYPE wdt_queue_depth gauge
wdt_queue_depth{queue="mail"} 42
# TYPE wdt_workers gauge
wdt_workers{pool="a"} 3
wdt_workers{pool="b"} 4
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def exporter() -> AsyncIterator[str]:
    """An aiohttp app on 127.0.0.1 serving gauges at /metrics; yields host:port."""
    app = web.Application()

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=GAUGES, content_type="text/plain")

    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client() -> AsyncIterator[ProbeClient]:
    async with open_probe_client() as shared:
        yield shared


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def prometheus(prometheus_factory: Any, exporter: str) -> PrometheusServer:
    server: PrometheusServer = prometheus_factory([exporter], scrape_interval="1s")
    return server


def check(url: str, query: str) -> PromqlCheck:
    return parse(
        PromqlCheck, {"name": "q", "type": "promql", "url": url, "query": query, "timeout": "5s"}
    )


async def first_value(source: PromqlSource, sink: RecordingSink) -> None:
    """Query until Prometheus has scraped the exporter once (it answers 'no series' before)."""
    for _ in range(60):
        await source.probe_once()
        if sink.last.kind == "value":
            return
        await asyncio.sleep(0.5)
    pytest.fail(f"no value from prometheus; last sample {sink.last}")


class TestPromql:
    async def test_single_series_is_a_value(
        self, prometheus: PrometheusServer, client: ProbeClient
    ) -> None:
        """A one-sample vector becomes the value; so does a scalar."""
        sink = RecordingSink()
        await first_value(
            PromqlSource(check(prometheus.url, "wdt_queue_depth"), sink, client), sink
        )
        assert sink.last.seconds == 42.0
        await PromqlSource(check(prometheus.url, "sum(wdt_workers)"), sink, client).probe_once()
        assert (sink.last.kind, sink.last.seconds) == ("value", 7.0)
        await PromqlSource(
            check(prometheus.url, "scalar(wdt_queue_depth) / 2"), sink, client
        ).probe_once()
        assert (sink.last.kind, sink.last.seconds) == ("value", 21.0)

    @pytest.mark.parametrize(
        ("query", "reason"),
        [
            ("wdt_queue_depth{", "bad_data"),
            ("wdt_metric_that_does_not_exist", "no series"),
            ("wdt_workers", "2 series"),
            ("scalar(wdt_workers) * 0 / 0", "not a finite number"),
        ],
    )
    async def test_bad_answers_are_unknown(
        self, prometheus: PrometheusServer, client: ProbeClient, query: str, reason: str
    ) -> None:
        """Query errors, empty, ambiguous and NaN results are unknown, with the reason."""
        sink = RecordingSink()
        await first_value(
            PromqlSource(check(prometheus.url, "wdt_queue_depth"), sink, client), sink
        )
        await PromqlSource(check(prometheus.url, query), sink, client).probe_once()
        assert sink.last.kind == "unknown"
        assert reason in sink.last.detail

    async def test_prometheus_down_is_unknown(
        self, prometheus_factory: Any, exporter: str, client: ProbeClient
    ) -> None:
        """When Prometheus is stopped the source reports unknown, never a value or failure."""
        server: PrometheusServer = prometheus_factory([exporter], scrape_interval="1s")
        sink = RecordingSink()
        source = PromqlSource(check(server.url, "wdt_queue_depth"), sink, client)
        await first_value(source, sink)
        server.stop()
        await source.probe_once()
        assert sink.last.kind == "unknown"
        assert "prometheus unreachable" in sink.last.detail
