"""The daemon's config validated by a child process (``config.out_of_process``): the same
config, the same secrets and the same problems as ``check-config``'s loader, and a child that
fails, hangs or crashes is a config error that quotes nothing from the file."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from watchdogd.config import check_process, loader, out_of_process
from watchdogd.config.loader import load_config
from watchdogd.config.out_of_process import PendingConfig, reload_config
from watchdogd.errors import ConfigError

CONFIG = textwrap.dedent(
    """\
    listen: 127.0.0.1:9797
    api_token: ${WATCHDOGD_TEST_TOKEN}
    targets:
      - name: app
        release_dir: {path: /srv/app, restart: ["true"]}
        checks:
          - {name: web, type: http, url: "http://127.0.0.1:8000/?key=${WATCHDOGD_TEST_KEY}"}
        gates:
          - {check: web, metric: latency_p95, above: 2s, for: 30s}
        playbook:
          - rollback: {}
    """
)
BROKEN = CONFIG.replace("above: 2s", "above: 2 parsecs").replace("name: web,", "nmae: web,")


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("WATCHDOGD_TEST_TOKEN", "tok-3f1c9a")
    monkeypatch.setenv("WATCHDOGD_TEST_KEY", "key-77b2e0")
    return "tok-3f1c9a", "key-77b2e0"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watchdogd.yaml"
    path.write_text(text)
    return path


def test_the_child_returns_the_loaders_config_with_its_secrets(
    tmp_path: Path, secrets: tuple[str, str]
) -> None:
    path = write(tmp_path, CONFIG)
    config = PendingConfig(path).result()
    assert config == load_config(path)
    assert config.secrets == frozenset(secrets)
    assert config.targets[0].gates[0].for_ == 30.0


async def test_a_reload_gets_the_same_config_from_a_child(
    tmp_path: Path, secrets: tuple[str, str]
) -> None:
    path = write(tmp_path, CONFIG)
    config = await reload_config(path)
    assert config == load_config(path)
    assert config.secrets == frozenset(secrets)


async def test_every_problem_comes_back_with_file_line_and_field(
    tmp_path: Path, secrets: tuple[str, str]
) -> None:
    path = write(tmp_path, BROKEN)
    with pytest.raises(ConfigError) as in_process:
        load_config(path)
    with pytest.raises(ConfigError) as at_start:
        PendingConfig(path).result()
    with pytest.raises(ConfigError) as at_reload:
        await reload_config(path)
    assert str(at_start.value) == str(at_reload.value) == str(in_process.value)
    assert str(at_start.value).splitlines() == [
        f"{path}:7: targets[0].checks[0].name: required, but missing",
        f'{path}:7: targets[0].checks[0].nmae: unknown key (did you mean "name"?)',
        f'{path}:9: targets[0].gates[0].above: expected a duration like "2s", "500ms" '
        "or \"5m\", got '2 parsecs'",
    ]


def test_a_child_that_cannot_start_its_check_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, CONFIG)
    failing = [sys.executable, "-c", "import sys; sys.exit('No module named watchdogd')"]
    monkeypatch.setattr(out_of_process, "_command", lambda _path: failing)
    with pytest.raises(ConfigError) as raised:
        PendingConfig(path).result()
    assert str(raised.value) == (
        f"{path}:1: the config check process failed (exit 1): No module named watchdogd"
    )


async def test_a_child_that_hangs_is_killed_and_the_reload_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, CONFIG)
    monkeypatch.setattr(out_of_process, "CHECK_TIMEOUT", 0.5)
    monkeypatch.setattr(
        out_of_process,
        "_command",
        lambda _path: [sys.executable, "-c", "import time; time.sleep(60)"],
    )
    with pytest.raises(ConfigError, match=r"not validated within 0\.5 s"):
        await reload_config(path)


def test_a_crash_in_the_check_names_its_type_and_quotes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(_path: str) -> None:
        raise RuntimeError("value tok-3f1c9a broke it")

    monkeypatch.setattr(loader, "load_config", crash)
    assert check_process._check(str(tmp_path / "any.yaml")) == ("crash", "RuntimeError")
