"""Start-up fails fast and cleanly: one daemon per ``state_dir``, the listen address bound
before anything is resumed, and every environment error one line on stderr with exit code 3.

Each of these was a defect (issue #11): a second daemon on the same ``state_dir`` resumed the
first one's running incident; a port in use or an unusable ``state_dir`` ended in a traceback
and exit 1, after incidents had already been resumed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.reliability.conftest import deploy, wait_for
from tests.support.daemon import daemon_yaml, release_dir_target, start_daemon
from tests.support.ports import free_port
from watchdogd.model import Release, Trigger, TriggerKind
from watchdogd.store import IncidentState, Store

EXIT_STARTUP = 3


def write_config(
    tmp_path: Path,
    *,
    port: int,
    app_port: int,
    release_dir: Path,
    state: Path | str,
    listen_host: str = "127.0.0.1",
    name: str = "watchdogd.yaml",
) -> Path:
    config = tmp_path / name
    marker = tmp_path / "downgrade-started"
    config.write_text(
        daemon_yaml(port, state, listen_host=listen_host)
        + "targets:\n"
        + release_dir_target(release_dir, app_port)
        + f"""\
    playbook:
      - {{command: {{command: [/bin/sh, -c, "touch {marker}; sleep 4"]}}, timeout: 30s}}
      - rollback: {{}}
      - wait_healthy: {{timeout: 20s}}
"""
    )
    return config


def run_to_exit(config: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``watchdogd run`` that is expected to give up on its own."""
    return subprocess.run(
        [sys.executable, "-m", "watchdogd", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit 3 and one plain line saying why (beside the JSON log records), no traceback."""
    assert result.returncode == EXIT_STARTUP, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [
        line for line in result.stderr.splitlines() if line.strip() and not line.startswith("{")
    ]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


class TestOneDaemonPerStateDir:
    def test_a_second_daemon_exits_at_once_and_the_first_incident_is_untouched(
        self, tmp_path: Path, app_port: int, release_dir: Path
    ) -> None:
        state = tmp_path / "state"
        port = free_port()
        first = start_daemon(
            write_config(
                tmp_path, port=port, app_port=app_port, release_dir=release_dir, state=state
            ),
            port,
            tmp_path,
        )
        try:
            first.wait_ready()
            first.wait_state("app", "healthy")
            deploy(release_dir, "v2")
            marker = tmp_path / "downgrade-started"
            wait_for("the first daemon's playbook", marker.exists, first)
            # A second daemon on the same state_dir, on a port of its own: before, it resumed
            # the running incident and ran its steps a second time.
            second = run_to_exit(
                write_config(
                    tmp_path,
                    port=free_port(),
                    app_port=app_port,
                    release_dir=release_dir,
                    state=state,
                    name="second.yaml",
                )
            )
            assert_one_line(second, "another watchdogd is running", str(state))
            status = first.wait_state("app", "rolled_back")
            assert status["current_release"]["image"] == "v1"
            events = first.get("/api/v1/events?limit=500").json()["events"]
            kinds = [e["kind"] for e in events]
            assert "incident_resumed" not in kinds
            assert kinds.count("incident_started") == 1
        finally:
            first.stop()


class TestEnvironmentErrors:
    def test_port_in_use_nothing_is_resumed(
        self, tmp_path: Path, app_port: int, release_dir: Path
    ) -> None:
        """The address is bound before incidents are resumed: a daemon that cannot serve does
        not touch an interrupted incident."""
        state = tmp_path / "state"
        state.mkdir()
        v1 = Release("app", "v1", "cfg", "v1")
        v2 = Release("app", "v2", "cfg", "v2")
        with Store.in_state_dir(state) as store:
            incident = store.create_incident(
                target="app",
                trigger=Trigger(TriggerKind.MANUAL, "operator", "test"),
                bad_release=v2,
                restore_release=v1,
                actions=["command", "rollback", "wait_healthy"],
            )
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            config = write_config(
                tmp_path, port=port, app_port=app_port, release_dir=release_dir, state=state
            )
            result = run_to_exit(config)
        assert_one_line(result, f"cannot listen on 127.0.0.1:{port}: Address already in use")
        assert not (tmp_path / "downgrade-started").exists()
        with Store.in_state_dir(state) as store:
            record = store.incident(incident.id)
            assert record is not None
            assert record.state is IncidentState.RUNNING
            assert store.journal_for(incident.id) == []

    def test_unresolvable_listen_host(
        self, tmp_path: Path, app_port: int, release_dir: Path
    ) -> None:
        config = write_config(
            tmp_path,
            port=free_port(),
            app_port=app_port,
            release_dir=release_dir,
            state=tmp_path / "state",
            listen_host="no-such-host.invalid",
        )
        assert_one_line(run_to_exit(config), "cannot listen on no-such-host.invalid")

    def test_state_dir_that_is_a_file(
        self, tmp_path: Path, app_port: int, release_dir: Path
    ) -> None:
        state = tmp_path / "state"
        state.write_text("not a directory")
        config = write_config(
            tmp_path, port=free_port(), app_port=app_port, release_dir=release_dir, state=state
        )
        assert_one_line(run_to_exit(config), f"state_dir {state} is not a directory")

    def test_state_dir_that_cannot_be_created(
        self, tmp_path: Path, app_port: int, release_dir: Path
    ) -> None:
        (tmp_path / "file").write_text("")
        state = tmp_path / "file" / "state"
        config = write_config(
            tmp_path, port=free_port(), app_port=app_port, release_dir=release_dir, state=state
        )
        assert_one_line(run_to_exit(config), f"state_dir {state} cannot be used")
