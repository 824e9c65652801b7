"""CI's chaos soak: ``benchmarks/soak.py --minutes 3 --seed 16`` must end with 0 violations.

The soak drives the Docker engine the tests use and a real ``watchdogd run`` (see the script's
docstring). It stops and starts the engine only where that is safe: under CI, as root, on the
local engine that ``.ci/run`` started (as ``tests/reliability/test_engine_outage.py`` does), or
where ``SOAK_ENGINE_PIDFILE`` names a private engine this run may stop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import in_ci, require

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SEED = 16
MINUTES = 3
CI_PIDFILE = Path("/var/run/docker.pid")


def engine_pidfile() -> Path | None:
    """The dockerd this run may stop and start again, if any."""
    chosen = os.environ.get("SOAK_ENGINE_PIDFILE")
    if chosen:
        return Path(chosen)
    if in_ci() and os.geteuid() == 0 and not os.environ.get("DOCKER_HOST"):
        try:
            pid = int(CI_PIDFILE.read_text().strip())
            if Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd":
                return CI_PIDFILE
        except (OSError, ValueError):
            return None
    return None


def test_three_minute_soak_has_no_violation(docker_engine: object, tmp_path: Path) -> None:
    """Deploys good and bad (blue-green ones through HAProxy too), SIGKILLs, reloads, HAProxy
    restarts, alerts, operator actions (and engine restarts where allowed) for 3 minutes:
    every invariant holds."""
    require(shutil.which("docker-compose"), "docker-compose (Debian package docker-compose)")
    haproxy = shutil.which("haproxy") or Path("/usr/sbin/haproxy").exists()
    require(haproxy, "haproxy, for the blue-green target (Debian package haproxy)")
    argv = [sys.executable, "benchmarks/soak.py", "--minutes", str(MINUTES), "--seed", str(SEED)]
    pidfile = engine_pidfile()
    if pidfile is not None:
        argv += ["--engine-restarts", str(pidfile)]
    log = tmp_path / "soak.log"
    with log.open("w") as out:
        result = subprocess.run(
            argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=20 * 60, check=False
        )
    output = log.read_text()
    assert result.returncode == 0, output[-12000:]
    assert "0 violations" in output
