"""The shipped systemd unit: hardened, valid, and wired for Type=notify."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require
from tests.support.scripts import benchmark_modules

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "watchdogd.service"


def analyze() -> str:
    path = shutil.which("systemd-analyze")
    require(path is not None, "systemd-analyze (Debian package systemd)")
    assert path is not None
    return path


class TestSystemdUnit:
    def test_exposure_is_at_most_2(self) -> None:
        """`systemd-analyze security --offline=true` rates the unit 2.0 or better."""
        result = subprocess.run(
            [analyze(), "security", "--offline=true", str(UNIT)],
            capture_output=True,
            text=True,
            check=False,
        )
        match = re.search(r"Overall exposure level for watchdogd.service: ([0-9.]+)", result.stdout)
        assert match is not None, result.stdout + result.stderr
        assert float(match.group(1)) <= 2.0

    def test_verify_is_clean(self, tmp_path: Path) -> None:
        """`systemd-analyze verify` reports nothing once ExecStart names an installed binary."""
        binary = Path(sys.executable).with_name("watchdogd")
        unit = tmp_path / "watchdogd.service"
        unit.write_text(UNIT.read_text().replace("/usr/local/bin/watchdogd", str(binary)))
        result = subprocess.run(
            [analyze(), "verify", str(unit)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == ""

    def test_notify_watchdog_and_reload_are_declared(self) -> None:
        """Type=notify with a watchdog, restart on failure, and SIGHUP for reload."""
        text = UNIT.read_text()
        for line in (
            "Type=notify",
            "WatchdogSec=30s",
            "Restart=on-failure",
            "StateDirectory=watchdogd",
            "SupplementaryGroups=docker",
            "ExecReload=/bin/kill -HUP $MAINPID",
        ):
            assert line in text.splitlines(), line

    @pytest.mark.parametrize("forbidden", ["PrivateUsers="])
    def test_no_setting_that_cuts_the_docker_socket(self, forbidden: str) -> None:
        """PrivateUsers would unmap the docker group."""
        assert not any(line.startswith(forbidden) for line in UNIT.read_text().splitlines())


class TestOptimizedBytecode:
    def test_the_bytecode_cache_is_the_units_own_cache_directory(self) -> None:
        """PYTHONOPTIMIZE=2 reads .opt-2.pyc, which the unit cannot write beside the sources
        (ProtectSystem=strict): its prefix is the CacheDirectory= systemd makes writable."""
        with benchmark_modules("shipped_env") as shipped_env:
            env = shipped_env.unit_environment(UNIT.read_text(), Path("/var/cache"))
        assert env["PYTHONOPTIMIZE"] == "2"
        assert env["PYTHONPYCACHEPREFIX"] == "/var/cache/watchdogd"
        assert "CacheDirectory=watchdogd" in UNIT.read_text().splitlines()

    def test_the_image_sets_what_the_unit_sets(self) -> None:
        """The Dockerfile's ENV carries the unit's settings, bar the cache (the image compiles
        its bytecode at build time)."""
        with benchmark_modules("shipped_env") as shipped_env:
            env = shipped_env.unit_environment(UNIT.read_text())
        env.pop("PYTHONPYCACHEPREFIX")
        image_env = {
            assignment
            for line in (ROOT / "Dockerfile").read_text().splitlines()
            if line.startswith("ENV ")
            for assignment in line.removeprefix("ENV ").split()
        }
        assert {f"{name}={value}" for name, value in env.items()} <= image_env
