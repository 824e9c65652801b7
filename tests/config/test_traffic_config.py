"""The ``traffic:`` section: valid configs load, mistakes name file, line and field."""

from __future__ import annotations

import textwrap

import pytest

from watchdogd.config.loader import load_config_text
from watchdogd.core.gates import GateMetric
from watchdogd.errors import ConfigError

BASE = textwrap.dedent(
    """\
    targets:
      - name: shop
        container: shop
        checks:
          - {name: api, type: http, url: "http://127.0.0.1:80/api"}
        traffic:
          haproxy: {socket: /run/haproxy/admin.sock, backend: app}
          strategy: blue_green
          upstream: {port: 8080}
    """
)


def load(text: str) -> object:
    return load_config_text(text, "watchdogd.yaml")


def errors(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return str(caught.value)


def test_minimal_section_loads_with_defaults() -> None:
    config = load_config_text(BASE, "watchdogd.yaml")
    traffic = config.targets[0].traffic
    assert traffic is not None
    assert traffic.haproxy.backend == "app"
    assert traffic.upstream.via == "published"
    assert traffic.pre_checks.samples == 5
    assert [g.metric for g in traffic.gates] == [GateMetric.ERROR_RATE]
    assert traffic.gates[0].above == pytest.approx(0.01)


def test_units_and_gates() -> None:
    text = BASE + textwrap.indent(
        textwrap.dedent(
            """\
            pre_checks: {samples: 3, interval: 200ms, max_latency: 500ms, checks: [api]}
            gates:
              - {metric: error_rate, above: 2%}
              - {metric: latency_p95, above: 800ms, for: 10s, min_slow: 5}
            bake_time: 2m
            """
        ),
        "      ",
    )
    traffic = load_config_text(text, "watchdogd.yaml").targets[0].traffic
    assert traffic is not None
    assert traffic.pre_checks.max_latency == pytest.approx(0.5)
    assert traffic.gates[1].above == pytest.approx(0.8)
    assert traffic.gates[1].for_ == pytest.approx(10.0)
    assert (traffic.gates[1].spec().min_slow, traffic.gates[0].spec().min_slow) == (5, 20)
    assert traffic.bake_time == pytest.approx(120.0)


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        ("strategy: blue_green", "strategy: rainbow", 8, "strategy", "blue_green"),
        ("upstream: {port: 8080}", "upstream: {port: 0}", 9, "upstream.port", ""),
        (
            "upstream: {port: 8080}",
            "upstream: {port: 8080, via: network}",
            9,
            "upstream",
            "network",
        ),
        ("backend: app}", "backend: app, sockt: /x}", 7, "haproxy", "sockt"),
    ],
)
def test_mistakes_name_file_line_and_field(
    old: str, new: str, line: int, field: str, message: str
) -> None:
    text = errors(BASE.replace(old, new))
    assert f"watchdogd.yaml:{line}: targets[0].traffic.{field}" in text, text
    assert message in text


def test_a_traffic_gate_on_health_is_refused() -> None:
    text = errors(BASE + "      gates: [{metric: unhealthy, above: 1}]\n")
    assert "targets[0].traffic.gates[0].metric" in text
    assert "user traffic gives" in text


def test_pre_checks_must_name_probe_checks() -> None:
    text = errors(BASE + "      pre_checks: {checks: [apii]}\n")
    assert "targets[0].traffic.pre_checks.checks[0]" in text
    assert 'did you mean "api"' in text


def test_only_container_and_compose_targets() -> None:
    text = errors(
        BASE.replace(
            "container: shop", "release_dir: {path: /srv/app, restart: [systemctl, restart, app]}"
        )
    )
    assert "targets[0].traffic" in text
    assert "container or compose" in text
