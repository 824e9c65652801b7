"""``watchdogd demo --traffic``: the blue-green story behind a real HAProxy, without Docker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require
from watchdogd.demo import blue_green


@pytest.mark.haproxy
@pytest.mark.slow
def test_the_bad_release_is_switched_back_and_users_are_told_the_count(tmp_path: Path) -> None:
    require(blue_green.haproxy_binary(), "the haproxy binary (Debian package haproxy)")
    result = subprocess.run(
        [sys.executable, "-m", "watchdogd", "demo", "--traffic", "--dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "pre-checks against green directly ... passed" in out
    assert "traffic switched to green" in out
    assert "switched back to blue" in out
    assert "failed requests users saw:" in out
    assert "0 sent after detection" in out


def test_without_haproxy_it_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(blue_green, "haproxy_binary", lambda: None)
    assert blue_green.run_traffic_demo(tmp_path) == blue_green.EXIT_UNAVAILABLE
    out = capsys.readouterr().out
    assert "apt-get install haproxy" in out
    assert not list(tmp_path.iterdir())  # nothing started, nothing written
