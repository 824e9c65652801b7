"""`watchdogd check-config`: the example passes, and every mistake names file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from watchdogd.cli import main
from watchdogd.config.loader import load_config, load_config_text
from watchdogd.config.settings import resolve
from watchdogd.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

# A valid config; each case below breaks one line of it. Line numbers are 1-based.
BASE = textwrap.dedent(
    """\
    listen: 127.0.0.1:9797
    defaults: {window: 5m, bake_time: 1m}
    notify:
      - {name: team, url: "json://127.0.0.1:8099/hook"}
    targets:
      - name: api
        kind: container
        container: app
        checks:
          - {name: health, type: container_health}
          - {name: latency, type: http, url: "http://127.0.0.1:8000/health", interval: 1s}
          - {name: p95, type: promql, url: "http://127.0.0.1:9090", query: "up"}
        gates:
          - {check: latency, metric: latency_p95, above: 2s}
          - {check: latency, metric: error_rate, above: 1%}
          - {check: health, metric: unhealthy, for: 10s}
        playbook:
          - notify: team
          - rollback: {}
          - wait_healthy: {timeout: 30s}
    """
)


def broken(line: int, new_text: str) -> str:
    lines = BASE.splitlines()
    lines[line - 1] = new_text
    return "\n".join(lines) + "\n"


def appended(extra: str) -> str:
    return BASE + extra


CASES = [
    # (config text, expected "line: field: message" fragment)
    pytest.param(
        broken(2, "defaults: {window: 5m, bake_tme: 1m}"),
        '2: defaults.bake_tme: unknown key (did you mean "bake_time"?)',
        id="unknown-key-with-suggestion",
    ),
    pytest.param(
        broken(14, "      - {check: latency, metric: latency_p95, above: 2 seconds}"),
        '14: targets[0].gates[0].above: expected a duration like "2s"',
        id="latency-threshold-not-a-duration",
    ),
    pytest.param(
        broken(15, "      - {check: latency, metric: error_rate, above: 150%}"),
        "15: targets[0].gates[1].above: expected a ratio between 0% and 100%",
        id="ratio-out-of-range",
    ),
    pytest.param(
        broken(15, "      - {check: latncy, metric: error_rate, above: 1%}"),
        '15: targets[0].gates[1].check: no check named "latncy" in this target '
        '(did you mean "latency"?)',
        id="gate-names-missing-check",
    ),
    pytest.param(
        broken(15, "      - {check: latency, metric: eror_rate, above: 1%}"),
        "15: targets[0].gates[1].metric: unknown value 'eror_rate'; expected",
        id="unknown-metric",
    ),
    pytest.param(
        broken(16, "      - {check: health, metric: error_rate, above: 1%}"),
        "16: targets[0].gates[2].metric: a container_health check gives unhealthy, not error_rate",
        id="metric-not-given-by-check",
    ),
    pytest.param(
        broken(11, '      - {name: latency, type: htp, url: "http://127.0.0.1:8000/health"}'),
        '11: targets[0].checks[1]: unknown type "htp"',
        id="unknown-check-type",
    ),
    pytest.param(
        broken(11, '      - {name: latency, type: http, url: "http://x", interval: soon}'),
        '11: targets[0].checks[1].interval: expected a duration like "2s"',
        id="bad-interval",
    ),
    pytest.param(
        broken(11, "      - {name: latency, type: http}"),
        "11: targets[0].checks[1].url: required, but missing",
        id="missing-url",
    ),
    pytest.param(
        broken(12, '      - {name: health, type: promql, url: "http://127.0.0.1:9090", query: up}'),
        '12: targets[0].checks[2].name: a second check named "health"',
        id="duplicate-check-name",
    ),
    pytest.param(
        appended("  - name: api\n    container: other\n"),
        '21: targets[1].name: a second target named "api"',
        id="duplicate-target-name",
    ),
    pytest.param(
        broken(19, "      - wait_healthy: {timeout: 10s}"),
        "17: targets[0].playbook: no rollback step while automatic rollback is on",
        id="playbook-without-rollback",
    ),
    pytest.param(
        broken(18, "      - notify: teem"),
        '18: targets[0].playbook[0].notify: no notifier named "teem" under notify: '
        '(did you mean "team"?)',
        id="notify-unknown-notifier",
    ),
    pytest.param(
        broken(18, "      - {notify: team, rollback: {}}"),
        "18: targets[0].playbook[0]: a step needs exactly one action",
        id="two-actions-in-one-step",
    ),
    pytest.param(
        broken(1, "listen: localhost"),
        '1: listen: expected "host:port"',
        id="listen-without-port",
    ),
    pytest.param(
        broken(7, "    kind: kubernetes"),
        "7: targets[0].kind: unknown value 'kubernetes'",
        id="unknown-target-kind",
    ),
    pytest.param(
        broken(8, "    compose: {project: shop, service: api}"),
        '6: targets[0]: a container target needs "container:"',
        id="kind-without-its-key",
    ),
    pytest.param(
        broken(12, '      - {name: p95, type: promql, url: "ftp://127.0.0.1:9090", query: up}'),
        "12: targets[0].checks[2].url: expected an http:// or https:// URL",
        id="url-scheme",
    ),
    pytest.param(
        broken(16, "      - {check: health, metric: unhealthy, above: 1%}"),
        "16: targets[0].gates[2].above: an unhealthy gate takes no threshold",
        id="threshold-on-unhealthy",
    ),
    pytest.param(
        broken(14, "      - {check: latency, metric: latency_p95}"),
        '14: targets[0].gates[0]: a latency_p95 gate needs "above"',
        id="latency-gate-without-threshold",
    ),
    pytest.param(
        broken(19, "      - rollback: {}\n      - rollback: {}"),
        "17: targets[0].playbook: more than one rollback step",
        id="two-rollbacks",
    ),
    pytest.param(
        broken(19, "      - redis_invalidate: {url: 'redis://127.0.0.1/0'}"),
        '19: targets[0].playbook[1].redis_invalidate: give exactly one of "pattern"',
        id="redis-without-pattern",
    ),
    pytest.param(
        broken(4, '  - {name: team, url: "json://127.0.0.1:8099/hook", url: "json://x"}'),
        "4: notify[0].url: duplicate key",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        broken(4, '  - {name: team, url: "json://${HOOK_HOST}/hook"}'),
        "4: notify[0].url: environment variable HOOK_HOST is not set",
        id="missing-env-var",
    ),
    pytest.param(
        broken(
            12,
            '      - {name: p95, type: scrape, url: "http://127.0.0.1:8000/metrics", '
            "requests: 'http_requests_total{status=~\"5..}'}",
        ),
        "12: targets[0].checks[2].requests: bad label matcher",
        id="bad-scrape-selector",
    ),
    pytest.param(
        broken(2, "defaults: {window: 5m, bake_time: [1m}"),
        "2: invalid YAML: expected ',' or ']'",
        id="malformed-yaml",
    ),
]


class TestBrokenConfigs:
    @pytest.mark.parametrize(("text", "expected"), CASES)
    def test_error_names_file_line_and_field(self, text: str, expected: str) -> None:
        """A broken config raises one ConfigError whose lines say file:line: field: message."""
        with pytest.raises(ConfigError) as caught:
            load_config_text(text, file="watchdogd.yaml")
        assert f"watchdogd.yaml:{expected}" in str(caught.value)

    def test_cli_exits_2_and_prints_the_location(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """check-config on a broken file exits 2 and prints file:line: field on stderr."""
        path = tmp_path / "watchdogd.yaml"
        path.write_text(broken(14, "      - {check: latency, metric: latency_p95, above: 2 s}"))
        assert main(["check-config", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{path}:14: targets[0].gates[0].above: expected a duration like" in err

    def test_every_problem_is_reported_at_once(self) -> None:
        """Two independent mistakes give two lines, in file order."""
        text = broken(2, "defaults: {windw: 5m}").replace("interval: 1s", "interval: x")
        with pytest.raises(ConfigError) as caught:
            load_config_text(text, file="w.yaml")
        assert [p.line for p in caught.value.problems] == [2, 11]


class TestValidConfigs:
    def test_example_config_passes(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The shipped example validates, and the summary counts what it watches."""
        path = REPO / "config" / "watchdogd.yaml"
        assert main(["check-config", str(path)]) == 0
        out = capsys.readouterr().out
        assert out.strip().endswith("OK: 1 target, 5 checks, 5 gates, 1 notifier")

    @pytest.mark.parametrize(
        "path", sorted((REPO / "config" / "examples").glob("*.yaml")), ids=lambda p: p.name
    )
    def test_small_examples_pass(self, path: Path) -> None:
        """Every file in config/examples validates."""
        load_config(path, environ={"PROBE_PASSWORD": "x", "REDIS_PASSWORD": "y"})

    def test_units_are_stored_in_base_units(self) -> None:
        """Durations become seconds and ratios fractions."""
        config = load_config_text(BASE)
        gates = config.targets[0].gates
        assert (gates[0].above, gates[1].above, gates[2].for_) == (2.0, 0.01, 10.0)
        assert config.defaults.window == 300.0
        assert resolve(config.targets[0], config.defaults).bake_time == 60.0

    def test_every_gate_setting_reaches_the_core(self) -> None:
        """``max_staleness`` (and every other gate key) arrives in the core's GateSpec, typed,
        in seconds; the target's settings are resolved once into typed values."""
        text = BASE.replace(
            "metric: error_rate, above: 1%}", "metric: error_rate, above: 1%, max_staleness: 45s}"
        )
        config = load_config_text(text)
        spec = config.targets[0].gates[1].spec()
        assert (spec.name, spec.max_staleness, spec.above) == ("latency:error_rate", 45.0, 0.01)
        assert config.targets[0].gates[0].spec().max_staleness is None
        settings = resolve(config.targets[0], config.defaults)
        assert isinstance(settings.max_rollbacks_per_hour, int)
        assert settings.playbook == tuple(config.targets[0].playbook)

    def test_env_values_are_expanded_and_remembered_as_secrets(self) -> None:
        """${VAR} takes the environment's value, and the value is listed as a secret."""
        text = broken(4, '  - {name: team, url: "json://127.0.0.1:8099/${HOOK_PATH}"}')
        config = load_config_text(text, environ={"HOOK_PATH": "s3cr3t"})
        assert config.notify[0].url == "json://127.0.0.1:8099/s3cr3t"
        assert config.secrets == frozenset({"s3cr3t"})

    def test_kind_is_inferred_from_the_one_target_key(self) -> None:
        """A target with only `container:` is a container target."""
        config = load_config_text(BASE.replace("    kind: container\n", ""))
        assert config.targets[0].kind == "container"

    def test_step_defaults_follow_idempotency(self) -> None:
        """Idempotent steps retry by default; the others run once."""
        config = load_config_text(appended("      - {command: {command: [echo, hi]}}\n"))
        steps = {step.action: step for step in config.targets[0].playbook}
        assert steps["rollback"].attempts == 3
        assert steps["command"].attempts == 1
        assert not steps["command"].is_idempotent
