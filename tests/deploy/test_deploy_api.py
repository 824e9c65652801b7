"""``POST /api/v1/targets/{name}/deploy`` and ``watchdogd deploy`` refuse what they cannot do,
with the right status and exit code, and change nothing (a real daemon; no Docker needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Daemons, ReleaseDir, daemons, release_dir, write_token  # noqa: F401
from tests.support.daemon import TOKEN, DaemonProcess

PATH = "/api/v1/targets/site/deploy"


def start(daemons: Daemons, app: ReleaseDir, tmp_path: Path) -> DaemonProcess:  # noqa: F811
    config = tmp_path / "watchdogd.yaml"
    config.write_text(f"""\
listen: 127.0.0.1:{daemons.port}
api_token_file: {write_token(tmp_path)}
state_dir: {tmp_path / "state"}
targets:
  - name: site
    release_dir: {{path: {app.root}, restart: ["true"]}}
    checks:
      - {{name: api, type: http, url: "http://127.0.0.1:{app.port}/", interval: 1s}}
""")
    return daemons.start(config)


def deploy_cli(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "watchdogd", "deploy", *args]
    command += ["--url", daemon.url, "--token", TOKEN]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_refusals(daemons: Daemons, release_dir: ReleaseDir, tmp_path: Path) -> None:  # noqa: F811
    daemon = start(daemons, release_dir, tmp_path)

    assert daemon.post(PATH, {"image": "app:v2"}, token=None).status_code == 401
    assert daemon.post(PATH, {"image": "app:v2"}, token="wrong").status_code == 401
    assert daemon.post(PATH, raw=b"{not json").status_code == 400
    assert daemon.post(PATH, {"image": ""}).status_code == 400
    assert daemon.post(PATH, {"image": 3}).status_code == 400
    assert daemon.post(PATH, ["app:v2"]).status_code == 400
    assert daemon.post("/api/v1/targets/nope/deploy", {"image": "a"}).status_code == 404
    no_traffic = daemon.post(PATH, {"image": "app:v2"})
    assert no_traffic.status_code == 422
    assert "no traffic: section" in no_traffic.json()["error"]
    # Nothing happened: no deploy recorded, the release is untouched.
    assert daemon.get(PATH).json() == {"deploy": None}
    assert daemon.get(f"{PATH}?id=nope").status_code == 404
    assert release_dir.running() == "v1"


def test_cli_exit_codes(daemons: Daemons, release_dir: ReleaseDir, tmp_path: Path) -> None:  # noqa: F811
    daemon = start(daemons, release_dir, tmp_path)

    result = deploy_cli(daemon, "site", "app:v2")
    assert result.returncode == 2, result.stderr
    assert "no traffic: section" in result.stderr
    assert "Traceback" not in result.stderr
    assert deploy_cli(daemon, "nope", "app:v2").returncode == 2
    usage = subprocess.run(
        [sys.executable, "-m", "watchdogd", "deploy", "site"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert usage.returncode == 2
