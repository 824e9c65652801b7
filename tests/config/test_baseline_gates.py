"""`compare: baseline` gates (issue #15): their shape is validated, and until a target kind
runs green beside blue, check-config says they cannot run rather than ignoring them."""

from __future__ import annotations

import textwrap

import pytest

from watchdogd.config import load_config_text
from watchdogd.config.schema import GateConfig
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
    gate = GateConfig.model_validate(
        {"check": "web", "metric": "error_rate", "compare": "baseline", "tolerance": "50%"}
    )
    assert (gate.compare, gate.tolerance, gate.above) == ("baseline", 0.5, None)
    assert GateConfig.model_validate({"check": "web", "metric": "error_rate"}).compare == (
        "absolute"
    )


def test_a_valid_baseline_gate_is_refused_until_blue_green_exists() -> None:
    lines = problems("{check: web, metric: latency_p95, compare: baseline, tolerance: 20%}")
    assert lines == [
        "w.yaml:8: targets[0].gates[1].compare: compare: baseline needs a blue-green target "
        "(green beside blue), which this version does not have yet"
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


def test_the_documented_example_fails_only_for_want_of_blue_green() -> None:
    """docs/canary.md's example (skipped by the docs tests) is right but for the one reason."""
    from tests.docs.doc_pages import ROOT, blocks  # noqa: PLC0415 - test helpers, by path

    (block,) = [b for b in blocks(ROOT / "docs" / "canary.md") if b.language == "yaml"]
    gates = textwrap.indent(block.text.removeprefix("gates:\n"), "    ")
    with pytest.raises(ConfigError) as caught:
        load_config_text(HEAD.removesuffix(HEAD.splitlines()[-1] + "\n") + gates, file="w.yaml")
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert all(line.endswith("which this version does not have yet") for line in lines)


def test_a_baseline_gate_defaults_to_the_stricter_confidence() -> None:
    """Tested after every error on a sliding window, a baseline gate defaults to 99.99 %; an
    absolute gate keeps 99.5 %, and a confidence written in the file wins for both."""
    gate = {"check": "web", "metric": "error_rate"}
    baseline = GateConfig.model_validate({**gate, "compare": "baseline"})
    assert baseline.effective_confidence == 0.9999
    assert GateConfig.model_validate({**gate, "above": "1%"}).effective_confidence == 0.995
    written = GateConfig.model_validate({**gate, "compare": "baseline", "confidence": 0.999})
    assert written.effective_confidence == 0.999
