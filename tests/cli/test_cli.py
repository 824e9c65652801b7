"""The command line against a running daemon: status, history, rollback, freeze, unfreeze.

Each call is a real ``python -m watchdogd`` process; the endpoint comes from flags, from
``WATCHDOGD_URL``/``WATCHDOGD_TOKEN`` or from ``--config``. Exit codes: 0 done, 1 refused by
the daemon, 2 config or usage error, 3 daemon unreachable, 4 token refused.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.ports import free_port
from tests.surfaces.conftest import TOKEN, DaemonFactory, ReleaseApp, alert_payload, bake_v2


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    # A clean environment: no WATCHDOGD_URL/TOKEN from the caller's shell.
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOGD_")}
    done = subprocess.run(
        [sys.executable, "-m", "watchdogd", *args],
        capture_output=True,
        text=True,
        check=False,
        env=base | (env or {}),
        timeout=60,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def flags(daemon: DaemonProcess, token: str | None = TOKEN) -> list[str]:
    return ["--url", daemon.url, *(["--token", token] if token else [])]


@pytest.fixture
def daemon(daemon_factory: DaemonFactory, release_app: ReleaseApp) -> DaemonProcess:
    """A daemon whose target `app` runs v2, with v1 known-good behind it."""
    process = daemon_factory(release_app, gates=False)
    bake_v2(process, release_app)
    return process


@pytest.mark.parametrize("release_app", [{"v2": "ok"}], indirect=True)
class TestCommandsAgainstADaemon:
    def test_status_prints_a_table_and_json(self, daemon: DaemonProcess) -> None:
        """`status` lists each target with its state and releases; `--json` the raw answer."""
        table = cli("status", *flags(daemon, token=None))
        assert table.code == 0, table.err
        header, row = table.out.splitlines()
        assert header.split() == ["TARGET", "STATE", "CURRENT", "KNOWN-GOOD", "GATES"]
        assert row.split()[:4] == ["app", "healthy", "v2", "v1"]

        raw = cli("status", "--json", *flags(daemon))
        assert raw.code == 0, raw.err
        [target] = raw.json()["targets"]
        assert (target["name"], target["current_release"]["image"]) == ("app", "v2")

    def test_freeze_and_unfreeze_with_the_endpoint_from_the_environment(
        self, daemon: DaemonProcess
    ) -> None:
        """WATCHDOGD_URL and WATCHDOGD_TOKEN stand in for the flags."""
        env = {"WATCHDOGD_URL": daemon.url, "WATCHDOGD_TOKEN": TOKEN}
        frozen = cli("freeze", "app", "--reason", "release train", env=env)
        assert (frozen.code, frozen.out.strip()) == (0, "app: frozen"), frozen.err
        assert daemon.target("app")["state"] == "frozen"
        again = cli("freeze", "app", "--json", env=env)
        assert again.code == 0
        assert again.json() == {"target": "app", "state": "frozen"}

        thawed = cli("unfreeze", "app", "--json", env=env)
        assert thawed.code == 0, thawed.err
        assert thawed.json() == {"target": "app", "state": "baking"}
        assert daemon.target("app")["state"] == "baking"

    def test_rollback_and_history_with_the_endpoint_from_the_config(
        self, daemon: DaemonProcess, release_app: ReleaseApp
    ) -> None:
        """`--config` gives URL and token; the rollback shows up in `history`."""
        done = cli("rollback", "app", "--reason", "bad deploy", "--config", str(daemon.config))
        assert done.code == 0, done.err
        assert done.out.startswith("app: rollback started (incident ")
        daemon.wait_state("app", "rolled_back")
        assert release_app.current() == "v1"

        history = cli("history", "app", "--config", str(daemon.config))
        assert history.code == 0, history.err
        assert "incident_started" in history.out
        assert "bad deploy" in history.out
        # Times read as UTC dates, not epoch seconds.
        assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ ", history.out, re.MULTILINE)
        kinds = [e["kind"] for e in cli("history", "--json", *flags(daemon)).json()["events"]]
        assert {"incident_started", "incident_finished", "known_good"} <= set(kinds)

    def test_history_escapes_control_characters_from_alert_labels(
        self, daemon: DaemonProcess
    ) -> None:
        """An alert label with terminal escapes reaches `history` escaped, one line an event."""
        labels = {
            "alertname": "Down\x1b[2J\x1b]0;owned\x07\nFAKE 2026-01-01 line",
            "service": "app",
            "severity": "critical",
        }
        assert daemon.post("/hooks/alertmanager", alert_payload(labels=labels)).status_code < 300
        daemon.wait_state("app", "rolled_back")
        history = cli("history", "app", *flags(daemon))
        assert history.code == 0, history.err
        assert "\\x1b[2J" in history.out
        assert "\x1b" not in history.out
        assert "\x07" not in history.out
        assert not [line for line in history.out.splitlines() if line.startswith("FAKE")]

    def test_rollback_to_a_release_the_target_never_ran_is_refused(
        self, daemon: DaemonProcess
    ) -> None:
        """The daemon's refusal is exit 1 with its reason; nothing is rolled back."""
        refused = cli("rollback", "app", "--to", "0123456789ab", *flags(daemon))
        assert refused.code == 1
        assert "0123456789ab" in refused.err
        assert daemon.target("app")["state"] == "healthy"

    def test_refused_tokens_exit_4(self, daemon: DaemonProcess) -> None:
        """A wrong token, or none at all, is exit 4 with a message that says so."""
        for command in (["freeze", "app"], ["unfreeze", "app"], ["rollback", "app"]):
            refused = cli(*command, *flags(daemon, token="not-the-token"))
            assert refused.code == 4, refused.err
            assert "refused the token" in refused.err
            assert "not-the-token" not in refused.err
        missing = cli("freeze", "app", *flags(daemon, token=None))
        assert missing.code == 4
        assert "--token" in missing.err  # where a token can come from
        assert daemon.target("app")["state"] == "healthy"
        assert [e["kind"] for e in daemon.get("/api/v1/events").json()["events"]].count(
            "frozen"
        ) == 0


class TestWithoutADaemon:
    @pytest.mark.parametrize("command", [["status"], ["history"], ["freeze", "app"]])
    def test_unreachable_daemon_exits_3(self, command: list[str]) -> None:
        """Nothing listening on the URL is exit 3, naming the URL."""
        url = f"http://127.0.0.1:{free_port()}"
        failed = cli(*command, "--url", url, "--token", TOKEN)
        assert failed.code == 3
        assert f"cannot reach watchdogd at {url}" in failed.err

    def test_broken_config_exits_2(self, tmp_path: Path) -> None:
        """A --config that does not load is exit 2 with the loader's message."""
        config = tmp_path / "watchdogd.yaml"
        config.write_text("listen: nowhere\n")
        failed = cli("status", "--config", str(config))
        assert failed.code == 2
        assert "listen" in failed.err
