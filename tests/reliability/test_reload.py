"""SIGHUP: everything the config sets takes effect, or the reload is refused and says which
key needs a restart (issue #11: a rotated API token was ignored while the reload reported
success; notifiers and log settings were never rebuilt).

And ``wait_healthy`` on a real daemon: samples of the bad release taken before the restore
never pass it (the reported "healthy after 0.0 s").
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import deploy, wait_for
from tests.support.daemon import DaemonProcess, daemon_yaml, release_dir_target, start_daemon
from tests.support.ports import free_port
from tests.support.sink import HttpSink

OLD_TOKEN = "old-token-0123456789"
NEW_TOKEN = "new-token-9876543210"


def config_text(
    tmp_path: Path,
    *,
    port: int,
    app_port: int,
    release_dir: Path,
    hook: str,
    level: str = "info",
    max_body: str = "1MiB",
    interval: str = "200ms",
    wait: str = "20s",
) -> str:
    head = daemon_yaml(port, tmp_path / "state", token_file=tmp_path / "token", level=level)
    target = release_dir_target(release_dir, app_port, interval=interval)
    return f"""\
{head}server: {{max_body: {max_body}}}
notify:
  - {{name: team, url: "{hook}"}}
targets:
{target}    playbook:
      - rollback: {{}}
      - wait_healthy: {{timeout: {wait}}}
      - notify: team
"""


@pytest.fixture
def sinks() -> Iterator[tuple[HttpSink, HttpSink]]:
    first, second = HttpSink(), HttpSink()
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def setup(
    tmp_path: Path, app_port: int, release_dir: Path, sinks: tuple[HttpSink, HttpSink]
) -> dict[str, object]:
    (tmp_path / "token").write_text(OLD_TOKEN + "\n")
    return {
        "tmp_path": tmp_path,
        "port": free_port(),
        "app_port": app_port,
        "release_dir": release_dir,
        "hook": f"json://127.0.0.1:{sinks[0].port}/hook",
    }


@pytest.fixture
def daemon(setup: dict[str, object]) -> Iterator[DaemonProcess]:
    tmp_path = setup["tmp_path"]
    assert isinstance(tmp_path, Path)
    config = tmp_path / "watchdogd.yaml"
    config.write_text(config_text(**setup))  # type: ignore[arg-type]
    process = start_daemon(config, int(str(setup["port"])), tmp_path)
    process.wait_ready()
    yield process
    process.stop()


def reload(daemon: DaemonProcess, text: str) -> None:
    """Write the config, SIGHUP, and wait until the reload was judged (either way)."""
    failures = daemon.metric("watchdogd_config_reload_failures_total") or 0.0
    marks = daemon.log.read_text().count("config_reloaded")
    daemon.config.write_text(text)
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(
        "the reload",
        lambda: (
            (daemon.metric("watchdogd_config_reload_failures_total") or 0.0) > failures
            or daemon.log.read_text().count("config_reloaded") > marks
        ),
        daemon,
    )


def freeze(daemon: DaemonProcess, token: str) -> int:
    return daemon.post("/api/v1/targets/app/freeze", {"reason": "t"}, token=token).status_code


class TestTakesEffect:
    def test_the_api_token_rotates(self, daemon: DaemonProcess, setup: dict[str, object]) -> None:
        """After SIGHUP with a new token file: the old token 401, the new one accepted."""
        assert freeze(daemon, NEW_TOKEN) == 401
        (daemon.config.parent / "token").write_text(NEW_TOKEN + "\n")
        reload(daemon, daemon.config.read_text())
        assert daemon.metric("watchdogd_config_last_reload_successful") == 1.0
        assert freeze(daemon, OLD_TOKEN) == 401
        assert freeze(daemon, NEW_TOKEN) == 200

    def test_notifiers_are_rebuilt(
        self,
        daemon: DaemonProcess,
        setup: dict[str, object],
        sinks: tuple[HttpSink, HttpSink],
        release_dir: Path,
    ) -> None:
        """The next playbook's notify step uses the notifier URL of the reloaded config."""
        daemon.wait_state("app", "healthy")
        moved = dict(setup, hook=f"json://127.0.0.1:{sinks[1].port}/hook")
        reload(daemon, config_text(**moved))  # type: ignore[arg-type]
        assert daemon.metric("watchdogd_config_last_reload_successful") == 1.0
        daemon.wait_state("app", "healthy")
        deploy(release_dir, "v2")
        sinks[1].wait_for("/hook", timeout=40)
        assert [r for r in sinks[0].requests if r.path == "/hook"] == []

    def test_log_settings_apply(self, daemon: DaemonProcess, setup: dict[str, object]) -> None:
        """log.format: console after the reload: the records from then on are not JSON."""
        text = config_text(**setup).replace("format: json", "format: console")  # type: ignore[arg-type]
        reload(daemon, text)
        assert freeze(daemon, OLD_TOKEN) == 200  # logs the state change
        daemon.process.send_signal(signal.SIGTERM)
        daemon.process.wait(timeout=30)
        lines = daemon.log.read_text().splitlines()
        reloaded = next(i for i, line in enumerate(lines) if "config_reloaded" in line)
        after = [line for line in lines[reloaded:] if line.strip()]
        assert any("frozen" in line for line in after)
        assert not any(line.startswith("{") for line in after), after


class TestRefused:
    def test_a_restart_only_key_refuses_the_reload_and_names_it(
        self, daemon: DaemonProcess, setup: dict[str, object]
    ) -> None:
        """server.max_body is fixed when the server is built: refused, old config kept."""
        reload(daemon, config_text(**dict(setup, max_body="2MiB")))  # type: ignore[arg-type]
        assert daemon.metric("watchdogd_config_last_reload_successful") == 0.0
        refusal = [
            json.loads(line)
            for line in daemon.log.read_text().splitlines()
            if "config_reload_failed" in line
        ]
        assert "server.max_body" in refusal[-1]["error"]
        assert daemon.process.poll() is None


class TestWaitHealthyNeedsFreshEvidence:
    def test_samples_from_before_the_restore_never_pass(
        self, setup: dict[str, object], sinks: tuple[HttpSink, HttpSink]
    ) -> None:
        """A manual rollback from a healthy release to one that is broken by now: right after
        the restore, the newest sample is still the healthy release's. Before, that passed
        ("healthy after 0.0 s"); now the restored release's own samples decide: the incident
        fails, the target is frozen and the notifiers are told."""
        tmp_path = Path(str(setup["tmp_path"]))
        release_dir = Path(str(setup["release_dir"]))
        config = tmp_path / "watchdogd.yaml"
        config.write_text(config_text(**dict(setup, interval="1s", wait="3s")))  # type: ignore[arg-type]
        daemon = start_daemon(config, int(str(setup["port"])), tmp_path)
        try:
            daemon.wait_ready()
            daemon.wait_state("app", "healthy")  # v1 is known-good
            (release_dir / "releases" / "v3").mkdir()
            deploy(release_dir, "v3")
            wait_for(
                "v3 known-good",
                lambda: (
                    daemon.target("app")["current_release"]["image"] == "v3"
                    and daemon.target("app")["state"] == "healthy"
                ),
                daemon,
            )
            (release_dir / "releases" / "v1" / "broken").touch()  # v1 answers 500 from now on
            response = daemon.post(
                "/api/v1/targets/app/rollback", {"reason": "test"}, token=OLD_TOKEN
            )
            assert response.status_code == 202, response.text
            daemon.wait_state("app", "frozen")
            events = daemon.get("/api/v1/events?limit=500").json()["events"]
            failed = [e for e in events if e["kind"] == "step_failed"]
            assert [e["data"].get("action") for e in failed] == ["wait_healthy"], failed
            finished = next(e for e in events if e["kind"] == "incident_finished")
            assert "failed" in finished["message"], finished
            told = sinks[0].wait_for(
                lambda r: r.path == "/hook" and r.json().get("event") == "target_frozen",
                timeout=20,
            )
            assert "failed" in told.json()["message"]
        finally:
            daemon.stop()
