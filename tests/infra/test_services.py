"""Proof that the test infrastructure of tests/support works against real services."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
import redis

from tests.support import SESSION_ID, SESSION_LABEL, TEST_LABEL, docker_labels, require
from tests.support.images import (
    AppImages,
    RunningApp,
    container_health,
    run_app,
    set_mode,
    wait_health,
    wait_http,
)
from tests.support.ports import free_port
from tests.support.services import (
    AlertmanagerFactory,
    PostgresServer,
    PrometheusFactory,
    PrometheusServer,
    RedisServer,
    _swept,
)
from tests.support.sink import HttpSink


def _client() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=10.0)


def _eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.25) -> Any:
    """Call ``check`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {result!r})")
        time.sleep(interval)


# --------------------------------------------------------------------------- helpers


def test_require_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    require(True, "anything")
    with pytest.raises(pytest.skip.Exception, match="frobnicator is not available"):
        require(False, "frobnicator")


def test_require_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no silent skips in CI"):
        require(None, "frobnicator")


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_sweep_owns_only_this_and_dead_sessions() -> None:
    assert docker_labels(role="x") == {TEST_LABEL: "1", SESSION_LABEL: SESSION_ID, "role": "x"}
    assert _swept({SESSION_LABEL: SESSION_ID}, stale_only=False)
    assert not _swept({SESSION_LABEL: SESSION_ID}, stale_only=True)
    assert not _swept({SESSION_LABEL: "1-abcdef12"}, stale_only=False)  # pid 1 is alive
    dead_pid = 4_194_304  # above the largest pid_max Linux allows
    assert _swept({SESSION_LABEL: f"{dead_pid}-abcdef12"}, stale_only=True)


def test_http_sink_records_and_serves(http_sink: HttpSink) -> None:
    http_sink.respond("/metrics", "x 1\n")
    with _client() as client:
        assert client.get(f"{http_sink.url}/metrics").text == "x 1\n"
        client.post(f"{http_sink.url}/hook?a=1", json={"k": "v"})
    request = http_sink.wait_for("/hook", timeout=5)
    assert (request.method, request.query, request.json()) == ("POST", "a=1", {"k": "v"})


# --------------------------------------------------------------------------- redis


@pytest.mark.redis
def test_redis_server(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.ping()
        client.set("watchdogd:test", "42")
        assert client.get("watchdogd:test") == b"42"
        assert client.config_get("save") == {"save": ""}
    finally:
        client.close()


# --------------------------------------------------------------------------- postgres


@pytest.mark.postgres
def test_postgres_server(postgres_server: PostgresServer) -> None:
    assert postgres_server.dsn == f"postgresql://postgres@127.0.0.1:{postgres_server.port}/postgres"
    with psycopg.connect(postgres_server.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.execute("CREATE TABLE IF NOT EXISTS t (id int)")
        conn.execute("INSERT INTO t VALUES (7)")
        assert conn.execute("SELECT sum(id) FROM t").fetchone() == (7,)
        row = conn.execute("SELECT current_user").fetchone()
        assert row == ("postgres",)


# --------------------------------------------------------------------------- prometheus


def _value(prometheus: PrometheusServer, promql: str) -> float | None:
    result = prometheus.query(promql)
    return float(result[0]["value"][1]) if result else None


@pytest.mark.prometheus
def test_prometheus_scrapes_a_target(
    prometheus_factory: PrometheusFactory, http_sink: HttpSink
) -> None:
    http_sink.respond("/metrics", "# TYPE wdt_demo gauge\nwdt_demo 42\n")
    prometheus = prometheus_factory([f"127.0.0.1:{http_sink.port}"])
    with _client() as client:
        assert client.get(f"{prometheus.url}/-/ready").status_code == 200
    assert _eventually(lambda: _value(prometheus, 'up{job="targets"}')) == 1.0
    assert _value(prometheus, "wdt_demo") == 42.0
    prometheus.stop()
    with pytest.raises(httpx.ConnectError), _client() as client:
        client.get(f"{prometheus.url}/-/ready")


# --------------------------------------------------------------------------- alertmanager

ALERT = {
    "labels": {"alertname": "WdtInfraTest", "service": "api", "severity": "page"},
    "annotations": {"summary": "infra test"},
    "generatorURL": "http://127.0.0.1/graph",
}


def _am_alerts(url: str) -> list[dict[str, Any]]:
    with _client() as client:
        response = client.get(f"{url}/api/v2/alerts")
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return alerts


@pytest.mark.alertmanager
def test_alertmanager_accepts_alerts(alertmanager_factory: AlertmanagerFactory) -> None:
    alertmanager = alertmanager_factory()
    with _client() as client:
        assert client.get(f"{alertmanager.url}/-/ready").status_code == 200
        response = client.post(f"{alertmanager.url}/api/v2/alerts", json=[ALERT])
        assert response.status_code == 200
        status = client.get(f"{alertmanager.url}/api/v2/status").json()
    assert status["cluster"]["status"] == "disabled"
    alerts = _eventually(lambda: _am_alerts(alertmanager.url))
    assert alerts[0]["labels"]["alertname"] == "WdtInfraTest"


@pytest.mark.alertmanager
def test_alertmanager_delivers_webhooks(
    alertmanager_factory: AlertmanagerFactory, http_sink: HttpSink
) -> None:
    alertmanager = alertmanager_factory(
        f"""
route:
  receiver: watchdogd
  group_by: [alertname, service]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: watchdogd
    webhook_configs:
      - url: {http_sink.url}/hooks/alertmanager
        send_resolved: true
        http_config:
          authorization: {{type: Bearer, credentials: s3cret}}
"""
    )
    with _client() as client:
        client.post(f"{alertmanager.url}/api/v2/alerts", json=[ALERT]).raise_for_status()
    request = http_sink.wait_for("/hooks/alertmanager", timeout=30)
    payload = request.json()
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["alerts"][0]["labels"]["alertname"] == "WdtInfraTest"


@pytest.mark.prometheus
@pytest.mark.alertmanager
def test_prometheus_sends_alerts_to_alertmanager(
    prometheus_factory: PrometheusFactory, alertmanager_factory: AlertmanagerFactory
) -> None:
    alertmanager = alertmanager_factory()
    prometheus = prometheus_factory(
        rules_yaml="""
groups:
  - name: infra
    rules:
      - alert: WdtAlwaysFiring
        expr: vector(1)
        labels: {service: api}
""",
        alertmanagers=[alertmanager.address],
    )
    try:
        alerts = _eventually(lambda: _am_alerts(alertmanager.url), timeout=30)
        assert alerts[0]["labels"]["alertname"] == "WdtAlwaysFiring"
    finally:
        prometheus.stop()
        alertmanager.stop()


# --------------------------------------------------------------------------- docker + app


@pytest.fixture
def start_app(docker_engine: Any) -> Iterator[Callable[..., RunningApp]]:
    """run_app() for one test; its containers are removed at the end of the test."""
    started: list[RunningApp] = []

    def start(image: str, **kwargs: Any) -> RunningApp:
        app = run_app(docker_engine, image, **kwargs)
        started.append(app)
        return app

    yield start
    for app in started:
        app.container.remove(force=True)


@pytest.mark.docker
def test_docker_engine_answers(docker_engine: Any) -> None:
    assert docker_engine.ping()
    assert docker_engine.version()["ApiVersion"]


@pytest.mark.docker
def test_app_images_are_built(docker_engine: Any, app_images: AppImages) -> None:
    assert len(set(app_images.ids.values())) == 3
    for release in ("v1", "v2", "v3"):
        image = docker_engine.images.get(app_images[release])
        assert image.labels[TEST_LABEL] == "1"
        assert f"APP_VERSION={release}" in image.attrs["Config"]["Env"]
        assert image.attrs["Size"] < 5_000_000


@pytest.mark.docker
def test_v1_is_good(app_images: AppImages, start_app: Callable[..., RunningApp]) -> None:
    app = start_app(app_images.v1)
    assert app.container.labels[SESSION_LABEL] == SESSION_ID
    with _client() as client:
        health = client.get(f"{app.url}/cgi-bin/health")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "version": "v1", "mode": "ok"}
        assert client.get(f"{app.url}/cgi-bin/api").status_code == 200
        assert client.get(f"{app.url}/cgi-bin/version").text.strip() == "v1"
        assert health.headers["X-App-Version"] == "v1"


@pytest.mark.docker
def test_v2_returns_500(app_images: AppImages, start_app: Callable[..., RunningApp]) -> None:
    app = start_app(app_images.v2)
    with _client() as client:
        assert client.get(f"{app.url}/cgi-bin/api").status_code == 500
        health = client.get(f"{app.url}/cgi-bin/health")
        assert health.status_code == 500
        assert health.json()["version"] == "v2"
        assert client.get(f"{app.url}/cgi-bin/version").text.strip() == "v2"


@pytest.mark.docker
def test_v3_is_slow(app_images: AppImages, start_app: Callable[..., RunningApp]) -> None:
    app = start_app(app_images.v3, environment={"APP_SLOW_SECONDS": "1"})
    with _client() as client:
        started = time.monotonic()
        assert client.get(f"{app.url}/cgi-bin/api").status_code == 200
        assert time.monotonic() - started >= 0.9
        metrics = client.get(f"{app.url}/cgi-bin/metrics").text
    assert 'http_request_duration_seconds_bucket{handler="api",le="0.5"} 0' in metrics
    assert 'http_request_duration_seconds_bucket{handler="api",le="2.5"} 1' in metrics


@pytest.mark.docker
def test_modes_switch_at_runtime(
    app_images: AppImages, start_app: Callable[..., RunningApp]
) -> None:
    app = start_app(app_images.v1)
    api, health = f"{app.url}/cgi-bin/api", f"{app.url}/cgi-bin/health"
    with _client() as client:
        set_mode(app.container, "500")
        assert client.get(api).status_code == 500
        set_mode(app.container, "unhealthy")
        assert (client.get(api).status_code, client.get(health).status_code) == (200, 503)
        assert client.post(f"{app.url}/cgi-bin/mode?mode=ok").text.strip() == "ok"
        assert client.get(health).status_code == 200
        assert client.get(f"{app.url}/cgi-bin/mode").text.strip() == "ok"
    # APP_MODE picks the default of a fresh container.
    assert wait_http(f"{start_app(app_images.v1, mode='500').url}/cgi-bin/api", status=500)


@pytest.mark.docker
def test_login_me_logout(app_images: AppImages, start_app: Callable[..., RunningApp]) -> None:
    app = start_app(app_images.v1)
    with _client() as client:
        login = client.post(f"{app.url}/cgi-bin/login", json={"username": "u", "password": "p"})
        assert login.status_code == 200
        token = login.json()["access_token"]
        assert token.startswith("tok-")
        auth = {"Authorization": f"Bearer {token}"}
        me = client.get(f"{app.url}/cgi-bin/me", headers=auth)
        assert (me.status_code, me.json()["user"]) == (200, "tester")
        assert client.get(f"{app.url}/cgi-bin/me").status_code == 401
        bad = {"Authorization": "Bearer tok-nope"}
        assert client.get(f"{app.url}/cgi-bin/me", headers=bad).status_code == 401
        wrong = client.post(f"{app.url}/cgi-bin/login", json={"password": "wrong"})
        assert wrong.status_code == 401
        assert client.get(f"{app.url}/cgi-bin/login").status_code == 405
        set_mode(app.container, "authfail")
        assert client.get(f"{app.url}/cgi-bin/me", headers=auth).status_code == 401
        set_mode(app.container, "ok")
        assert client.post(f"{app.url}/cgi-bin/logout", headers=auth).status_code == 200
        assert client.get(f"{app.url}/cgi-bin/me", headers=auth).status_code == 401


@pytest.mark.docker
def test_healthcheck_turns_healthy_then_unhealthy(
    app_images: AppImages, start_app: Callable[..., RunningApp]
) -> None:
    app = start_app(app_images.v1)
    wait_health(app.container, "healthy", timeout=20)
    set_mode(app.container, "500")
    wait_health(app.container, "unhealthy", timeout=20)
    set_mode(app.container, "ok")
    wait_health(app.container, "healthy", timeout=20)


@pytest.mark.docker
def test_docker_stop_is_fast(app_images: AppImages, start_app: Callable[..., RunningApp]) -> None:
    app = start_app(app_images.v1)
    started = time.monotonic()
    app.container.stop(timeout=10)
    assert time.monotonic() - started < 3
    app.container.reload()
    assert app.container.attrs["State"]["ExitCode"] == 0
    assert container_health(app.container) in {"starting", "healthy", "unhealthy"}


@pytest.mark.docker
@pytest.mark.prometheus
def test_prometheus_scrapes_the_app(
    app_images: AppImages,
    start_app: Callable[..., RunningApp],
    prometheus_factory: PrometheusFactory,
) -> None:
    app = start_app(app_images.v2)
    prometheus = prometheus_factory([f"{app.url}/cgi-bin/metrics"])
    try:
        with _client() as client:
            for _ in range(3):
                client.get(f"{app.url}/cgi-bin/api")
        errors = _eventually(
            lambda: _value(prometheus, 'http_requests_total{handler="api",status="500"}')
        )
        assert errors >= 3
        version = prometheus.query("app_version_info")
        assert version[0]["metric"]["version"] == "v2"
    finally:
        prometheus.stop()
