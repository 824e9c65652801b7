"""A real Prometheus scrapes a running daemon, and the Grafana dashboard reads what it stores.

One daemon watches a release directory (rolled back once during the setup, so the rollback
series exist) and a container (so its health is known), has received an alert and refused a
request: every metric the issue names then has a series. Prometheus scrapes it each second.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DaemonProcess, start_daemon
from tests.support.images import AppImages, run_app, wait_health
from tests.support.ports import free_port
from tests.support.services import PrometheusFactory, PrometheusServer
from tests.support.waiting import wait_for
from tests.surfaces.conftest import (
    DOCUMENTED_METRICS,
    HISTOGRAMS,
    TOKEN,
    alert_payload,
    http_client,
    release_dir_config,
    serve_release_app,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.docker]

DASHBOARD = Path(__file__).resolve().parents[2] / "config" / "grafana-dashboard.json"
# Grafana's variables, replaced the way Grafana would before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$target": ".*", "$__rate_interval": "1m", "${datasource}": ""}


@dataclass(frozen=True)
class Scraped:
    prometheus: PrometheusServer
    daemon: DaemonProcess

    def metric_names(self) -> set[str]:
        with http_client() as client:
            response = client.get(f"{self.prometheus.url}/api/v1/label/__name__/values")
        response.raise_for_status()
        return set(response.json()["data"])

    def query(self, promql: str) -> dict[str, Any]:
        with http_client() as client:
            response = client.get(f"{self.prometheus.url}/api/v1/query", params={"query": promql})
        body: dict[str, Any] = response.json()
        return body


def series_names(metric: str) -> set[str]:
    """What Prometheus stores for a metric: a histogram as its three series."""
    if metric in HISTOGRAMS:
        return {f"{metric}_bucket", f"{metric}_sum", f"{metric}_count"}
    return {metric}


def container_target(name: str, port: int) -> str:
    return f"""\
  - name: web
    container: {name}
    checks:
      - {{name: health, type: container_health}}
      - {{name: api, type: http, url: "http://127.0.0.1:{port}/cgi-bin/api", interval: 250ms}}
    gates:
      - {{check: health, metric: unhealthy, for: 5s}}
"""


@pytest.fixture(scope="module")
def scraped(
    tmp_path_factory: pytest.TempPathFactory,
    docker_engine: Any,
    app_images: AppImages,
    prometheus_factory: PrometheusFactory,
) -> Iterator[Scraped]:
    workdir = tmp_path_factory.mktemp("scraped")
    web = run_app(docker_engine, app_images.v1)
    try:
        with serve_release_app(workdir / "app", {"v1": "ok", "v2": "500"}) as app:
            port = free_port()
            (workdir / "token").write_text(TOKEN)
            config = workdir / "watchdogd.yaml"
            config.write_text(
                release_dir_config(
                    port=port,
                    state=workdir / "state",
                    token_file=workdir / "token",
                    app=app,
                    extra_targets=container_target(web.container.name, web.port),
                )
            )
            daemon = start_daemon(config, port, workdir)
            try:
                daemon.wait_ready()
                prometheus = prometheus_factory([f"127.0.0.1:{port}"])
                wait_health(web.container)
                daemon.wait_state("app", "healthy")
                daemon.wait_state("web", "healthy")
                assert daemon.post("/hooks/alertmanager", {}, token="wrong").status_code == 401
                resolved = alert_payload(status="resolved", labels={"alertname": "Other"})
                assert daemon.post("/hooks/alertmanager", resolved).status_code == 200
                app.deploy("v2")
                daemon.wait_state("app", "rolled_back")
                yield Scraped(prometheus, daemon)
            finally:
                daemon.stop()
    finally:
        web.container.remove(force=True)


def dashboard_queries() -> list[str]:
    """Every PromQL expression in the dashboard, its variables replaced."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    found += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    found += [
        v["definition"].removeprefix("label_values(").split(",")[0]
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    ]
    for variable, value in GRAFANA_VARIABLES.items():
        found = [expr.replace(variable, value) for expr in found]
    return found


class TestPrometheusScrape:
    def test_daemon_is_an_up_target(self, scraped: Scraped) -> None:
        """Prometheus reports the daemon's scrape target as up."""
        result = wait_for("the first scrape", lambda: scraped.query("up")["data"]["result"])
        assert [r["value"][1] for r in result] == ["1"]
        assert result[0]["metric"]["job"] == "targets"

    def test_documented_metric_names_are_stored(self, scraped: Scraped) -> None:
        """Every metric issue 5 names has a series in Prometheus."""
        wanted = set().union(*(series_names(m) for m in DOCUMENTED_METRICS))
        stored = wait_for(
            "every documented metric in Prometheus",
            lambda: (names := scraped.metric_names()) >= wanted and names,
        )
        assert wanted <= stored, sorted(wanted - stored)

    def test_series_carry_their_labels(self, scraped: Scraped) -> None:
        """The rollback, the alert and the container's health arrived with their labels."""
        wait_for(
            "the rollback counter",
            lambda: scraped.query('watchdogd_rollbacks_total{target="app"}')["data"]["result"],
        )
        [rollback] = scraped.query("watchdogd_rollbacks_total")["data"]["result"]
        assert rollback["metric"] | {"trigger": "gate", "result": "succeeded"} == rollback["metric"]
        [alerts] = scraped.query("watchdogd_alerts_received_total")["data"]["result"]
        assert (alerts["metric"]["status"], alerts["value"][1]) == ("resolved", "1")
        [health] = scraped.query("watchdogd_container_healthy")["data"]["result"]
        assert (health["metric"]["target"], health["value"][1]) == ("web", "1")


class TestGrafanaDashboard:
    def test_every_metric_the_dashboard_names_is_scraped(self, scraped: Scraped) -> None:
        """Each watchdogd_* name in the dashboard's PromQL exists in Prometheus."""
        named = {
            name for expr in dashboard_queries() for name in re.findall(r"watchdogd_\w+", expr)
        }
        assert len(named) >= 15
        stored = wait_for(
            "the dashboard's metrics in Prometheus",
            lambda: (names := scraped.metric_names()) >= named and names,
        )
        assert named <= stored, sorted(named - stored)

    def test_every_dashboard_query_runs(self, scraped: Scraped) -> None:
        """Prometheus accepts each expression, and each panel's query returns data."""
        dashboard = json.loads(DASHBOARD.read_text())
        for expr in dashboard_queries():
            answer = scraped.query(expr)
            assert answer["status"] == "success", (expr, answer)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                wait_for(
                    f"data for {panel['title']!r}: {expr}",
                    lambda expr=expr: scraped.query(expr)["data"]["result"],
                    timeout=10,
                )

    def test_dashboard_is_importable_json(self) -> None:
        """Panels have unique ids and a Prometheus datasource variable; no fixed datasource."""
        dashboard = json.loads(DASHBOARD.read_text())
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["query"] == "prometheus"
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
