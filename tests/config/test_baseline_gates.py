"""`compare: baseline` gates (issue #15): judged on HAProxy's per-release traffic, they belong
under a canary's `traffic: gates:`; check-config refuses one among a target's own gates (its
probes see one release at a time) with the reason, rather than ignoring it."""

from __future__ import annotations

import textwrap

import pytest

from watchdogd.config.loader import load_config_text
from watchdogd.config.schema import GateConfig
from watchdogd.config.validation import parse
from watchdogd.errors import ConfigError

HEAD = textwrap.dedent(
    """\
    targets:
      - name: api
        container: app
        checks:
          - {name: web, type: http, url: "http://127.0.0.1:8000/"}
        gates:
          - {check: web, metric: error_rate, above: 1%}
    """
)


def problems(gate_line: str) -> list[str]:
    """The check-config lines for HEAD plus one more gate (line 8)."""
    with pytest.raises(ConfigError) as caught:
        load_config_text(HEAD + f"      - {gate_line}\n", file="w.yaml")
    return str(caught.value).splitlines()


def test_the_shape_parses_with_units() -> None:
    gate = parse(
        GateConfig,
        {"check": "web", "metric": "error_rate", "compare": "baseline", "tolerance": "50%"},
    )
    assert (gate.compare, gate.tolerance, gate.above) == ("baseline", 0.5, None)
    assert parse(GateConfig, {"check": "web", "metric": "error_rate"}).compare == ("absolute")


def test_a_baseline_gate_among_target_gates_is_refused_with_where_it_belongs() -> None:
    lines = problems("{check: web, metric: latency_p95, compare: baseline, tolerance: 20%}")
    assert lines == [
        "w.yaml:8: targets[0].gates[1].compare: compare: baseline judges green against blue on "
        "HAProxy's traffic: put it under traffic: gates: of a strategy: canary target "
        "(docs/canary.md)"
    ]


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        pytest.param(
            "{check: web, metric: latency_mean, compare: baseline}",
            "w.yaml:8: targets[0].gates[1].metric: compare: baseline takes error_rate, "
            "failure_rate, latency_p50, latency_p95, latency_p99, not latency_mean",
            id="metric-without-a-test",
        ),
        pytest.param(
            "{check: web, metric: error_rate, compare: baseline, above: 1%}",
            "w.yaml:8: targets[0].gates[1].above: a baseline gate compares with blue, "
            "not a threshold; add a separate gate",
            id="threshold-on-a-baseline-gate",
        ),
        pytest.param(
            "{check: web, metric: error_rate, above: 1%, tolerance: 50%}",
            "w.yaml:8: targets[0].gates[1].tolerance: tolerance is for compare: baseline gates",
            id="tolerance-without-baseline",
        ),
        pytest.param(
            "{check: web, metric: error_rate, compare: baseline, tolerance: 150%}",
            "w.yaml:8: targets[0].gates[1].tolerance: expected a ratio between 0% and 100%",
            id="tolerance-out-of-range",
        ),
        pytest.param(
            "{check: web, metric: error_rate, compare: basline}",
            "w.yaml:8: targets[0].gates[1].compare: unknown value 'basline'",
            id="typo-in-compare",
        ),
    ],
)
def test_mistakes_name_line_and_field(gate: str, expected: str) -> None:
    assert any(line.startswith(expected) for line in problems(gate)), problems(gate)


TRAFFIC = textwrap.dedent(
    """\
    targets:
      - name: api
        container: app
        checks:
          - {name: web, type: http, url: "http://127.0.0.1:8000/"}
        traffic:
          haproxy: {socket: /run/haproxy.sock, backend: app, log_socket: /run/log.sock}
          upstream: {port: 8080}
    """
)


def traffic_problems(lines: str) -> list[str]:
    """check-config's lines for a traffic section ending with ``lines`` (from line 9)."""
    with pytest.raises(ConfigError) as caught:
        load_config_text(TRAFFIC + textwrap.indent(lines, "      "), file="t.yaml")
    return str(caught.value).splitlines()


def test_a_canary_with_baseline_gates_loads() -> None:
    text = TRAFFIC + textwrap.indent(
        "strategy: canary\n"
        "steps: [{weight: 5%, for: 1m}, {weight: 50%, for: 2m}]\n"
        "gates:\n"
        "  - {metric: error_rate, above: 1%}\n"
        "  - {metric: latency_p95, compare: baseline}\n",
        "      ",
    )
    traffic = load_config_text(text, file="t.yaml").targets[0].traffic
    assert traffic is not None
    assert [(s.weight, s.duration) for s in traffic.plan(bake_time=600)] == [(5, 60), (50, 120)]
    baseline = traffic.gates[1]
    assert baseline.name == "traffic:latency_p95:baseline"
    assert baseline.baseline_spec().confidence == 0.9999
    assert baseline.baseline_spec().margin == 1.2  # the latency default tolerance


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(
            "strategy: canary\n",
            "strategy: canary needs steps",
            id="canary-without-steps",
        ),
        pytest.param(
            "steps: [{weight: 5%, for: 1m}]\n",
            "steps are for strategy: canary",
            id="steps-without-canary",
        ),
        pytest.param(
            "strategy: canary\nsteps: [{weight: 50%, for: 1m}, {weight: 25%, for: 1m}]\n",
            "canary weights must rise step by step, got [50, 25]",
            id="falling-weights",
        ),
        pytest.param(
            "strategy: canary\nsteps: [{weight: 2.5%, for: 1m}]\n",
            "a weight is a whole percentage from 1% to 100%",
            id="fractional-weight",
        ),
        pytest.param(
            "gates: [{metric: error_rate, compare: baseline}]\n",
            "compare: baseline gates need strategy: canary",
            id="baseline-in-blue-green",
        ),
        pytest.param(
            "strategy: canary\nsteps: [{weight: 5%, for: 1m}]\n"
            "gates: [{metric: latency_mean, compare: baseline}]\n",
            "compare: baseline takes error_rate",
            id="baseline-metric",
        ),
        pytest.param(
            "strategy: canary\nsteps: [{weight: 5%, for: 1m}]\n"
            "gates: [{metric: error_rate, compare: baseline, above: 1%}]\n",
            "a baseline gate compares with blue, not a threshold",
            id="baseline-with-threshold",
        ),
        pytest.param(
            "gates: [{metric: error_rate}]\n",
            'give "above" (a threshold), or compare: baseline',
            id="absolute-without-threshold",
        ),
    ],
)
def test_traffic_mistakes_name_the_line(lines: str, expected: str) -> None:
    found = traffic_problems(lines)
    assert any(line.startswith("t.yaml:") and expected in line for line in found), found


def test_a_baseline_gate_defaults_to_the_stricter_confidence() -> None:
    """Tested after every error on a sliding window, a baseline gate defaults to 99.99 %; an
    absolute gate keeps 99.5 %, and a confidence written in the file wins for both."""
    gate = {"check": "web", "metric": "error_rate"}
    baseline = parse(GateConfig, {**gate, "compare": "baseline"})
    assert baseline.confidence == 0.9999
    assert parse(GateConfig, {**gate, "above": "1%"}).confidence == 0.995
    written = parse(GateConfig, {**gate, "compare": "baseline", "confidence": 0.999})
    assert written.confidence == 0.999
