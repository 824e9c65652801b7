"""Configs that are broken on purpose, or carry secrets (issue #11, low items and usability):
a config error naming the file and exit 2, never a traceback, and never a secret's value."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_check_config import BASE, broken

from watchdogd.cli import main
from watchdogd.config.loader import load_config, load_config_text
from watchdogd.config.yaml_text import MAX_EXPANDED
from watchdogd.errors import ConfigError

SECRET = "pa55w0rd-from-the-environment"


def write(tmp_path: Path, data: str | bytes) -> Path:
    path = tmp_path / "watchdogd.yaml"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


class TestHostileFiles:
    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            pytest.param(
                BASE.encode().replace(b"name: api", b"name: \xff\xfeapi"),
                ":6: not UTF-8 text (byte 0xff",
                id="not-utf8",
            ),
            pytest.param(
                "targets: " + "[" * 20_000 + "]" * 20_000 + "\n",
                ":1: invalid YAML: nested deeper than 64 levels",
                id="20000-deep",
            ),
            pytest.param(
                alias_bomb(),
                f":1: aliases expand to more than {MAX_EXPANDED} values",
                id="alias-bomb",
            ),
            pytest.param("? [a, b]\n: c\n", ":1: a key must be a plain value", id="list-key"),
        ],
    )
    def test_check_config_exits_2_naming_the_file(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        data: str | bytes,
        expected: str,
    ) -> None:
        """No traceback: one config error line with the file's name, and exit 2."""
        path = write(tmp_path, data)
        assert main(["check-config", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{path}{expected}" in err
        assert "Traceback" not in err

    def test_aliases_within_the_cap_still_work(self) -> None:
        """Anchors for reuse are fine: only an expansion past the cap is refused."""
        text = BASE.replace("      - notify: team", "      - &tell notify: team").replace(
            "      - wait_healthy: {timeout: 30s}", "      - wait_healthy: {timeout: 30s}"
        )
        text = text.replace("defaults: {window: 5m, bake_time: 1m}", "defaults: &d {window: 5m}")
        assert load_config_text(text).defaults.window == 300.0


class TestSecretsInErrors:
    @pytest.mark.parametrize(
        ("line", "text"),
        [
            pytest.param(  # config/rules.py: the check URL rule
                11,
                '      - {name: latency, type: http, url: "${PROBE_URL}", interval: 1s}',
                id="rules-url",
            ),
            pytest.param(  # config/units.py: a duration
                11,
                "      - {name: latency, type: http, url: http://x/, interval: '${EVERY}'}",
                id="units-duration",
            ),
            pytest.param(  # a literal choice
                14,
                "      - {check: latency, metric: '${METRIC}', above: 2s}",
                id="literal",
            ),
        ],
    )
    def test_an_error_never_echoes_a_value_from_the_environment(
        self, tmp_path: Path, line: int, text: str
    ) -> None:
        """The problem is reported at its line, the value replaced by ***."""
        environ = dict.fromkeys(("PROBE_URL", "EVERY", "METRIC"), SECRET)
        with pytest.raises(ConfigError) as caught:
            load_config(write(tmp_path, broken(line, text)), environ=environ)
        message = str(caught.value)
        assert f"watchdogd.yaml:{line}: " in message
        assert SECRET not in message
        assert "***" in message

    def test_a_default_is_not_a_secret(self) -> None:
        """${VAR:-default} falls back to text written in the file: nothing to hide."""
        text = broken(1, "listen: ${LISTEN:-127.0.0.1:9797}")
        config = load_config_text(text, environ={})
        assert config.listen == "127.0.0.1:9797"
        assert config.secrets == frozenset()


class TestMisspeltStep:
    def test_the_unknown_step_is_named_with_a_suggestion(self) -> None:
        """`- rollbak: {}` is named, with the step it probably meant."""
        text = BASE.replace("      - rollback: {}", "      - rollbak: {}")
        with pytest.raises(ConfigError) as caught:
            load_config_text(text, file="w.yaml")
        assert 'w.yaml:19: targets[0].playbook[1]: unknown step "rollbak" (did you mean ' in str(
            caught.value
        )
        assert '"rollback"?)' in str(caught.value)


class TestCheckConfigWithoutSecrets:
    TEXT = broken(4, '  - {name: team, url: "${HOOK_URL}"}') + "api_token: ${API_TOKEN}\n"

    def test_unset_secrets_are_placeholders_for_check_config(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A CI job without the secrets validates the rest, and is told what was not set."""
        monkeypatch.delenv("HOOK_URL", raising=False)
        monkeypatch.delenv("API_TOKEN", raising=False)
        path = write(tmp_path, self.TEXT)
        assert main(["check-config", str(path)]) == 0
        out, err = capsys.readouterr()
        assert "OK: 1 target" in out
        assert "not set, checked with placeholders: HOOK_URL, API_TOKEN" in err

    def test_other_errors_are_still_caught(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A placeholder hides nothing else: an unknown key still fails."""
        monkeypatch.delenv("HOOK_URL", raising=False)
        monkeypatch.delenv("API_TOKEN", raising=False)
        path = write(tmp_path, self.TEXT.replace("bake_time", "bake_tme"))
        assert main(["check-config", str(path)]) == 2
        assert "defaults.bake_tme: unknown key" in capsys.readouterr().err

    def test_a_typed_value_cannot_be_a_placeholder(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Where a duration is expected, an unset variable is reported, naming it."""
        monkeypatch.delenv("EVERY", raising=False)
        text = broken(
            11, "      - {name: latency, type: http, url: http://x/, interval: '${EVERY}'}"
        )
        assert main(["check-config", str(write(tmp_path, text))]) == 2
        assert ":11: targets[0].checks[1].interval: EVERY not set" in capsys.readouterr().err

    def test_require_env_and_run_refuse_unset_secrets(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--require-env checks as `run` loads: an unset variable is an error."""
        monkeypatch.delenv("HOOK_URL", raising=False)
        monkeypatch.delenv("API_TOKEN", raising=False)
        path = write(tmp_path, self.TEXT)
        assert main(["check-config", "--require-env", str(path)]) == 2
        assert "environment variable HOOK_URL is not set" in capsys.readouterr().err
        assert main(["run", "--config", str(path)]) == 2
        assert "environment variable API_TOKEN is not set" in capsys.readouterr().err


def test_a_large_config_written_out_is_not_an_alias_bomb() -> None:
    """1000 targets are some 25 000 values, none through an alias: they load."""
    target = (
        "  - name: t{n}\n"
        "    release_dir: {{path: /srv/t{n}, restart: [/bin/true]}}\n"
        "    checks:\n"
        '      - {{name: web, type: http, url: "http://127.0.0.1:8000/{n}", interval: 1s}}\n'
        "    gates:\n"
        "      - {{check: web, metric: error_rate, above: 1%}}\n"
        "      - {{check: web, metric: latency_p95, above: 2s}}\n"
    )
    text = "targets:\n" + "".join(target.format(n=n) for n in range(1000))
    assert len(load_config_text(text, file="big.yaml").targets) == 1000
