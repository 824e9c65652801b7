"""Attacks on a daemon watching release directories (issue #11, items 8 and 9 and the low
items on release directories and reload), each against the real ``watchdogd run``:

* a manual rollback whose ``to`` names a quarantined release is refused (API and CLI);
* a child process (``command`` step, ``restart``) sees no secret of the daemon's environment;
* a ``current`` link out of ``releases/`` is never blessed, and a symlink loop stays in its own
  target;
* a reload with a hostile config is a counted failed reload, and logs no new secret.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import deploy, wait_for
from tests.support.daemon import TOKEN, DaemonProcess, daemon_yaml, release_dir_target, start_daemon
from tests.support.ports import free_port
from watchdogd.cli import main

HOOK_SECRET = "hook-secret-0123456789"
NEW_SECRET = "reloaded-secret-9876543210"


def dump_env(path: Path) -> list[str]:
    """A child that writes its environment to ``path``, one ``NAME=value`` a line."""
    return ["/bin/sh", "-c", f'env > "{path}"']


def read_env(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def release_tree(root: Path) -> Path:
    for version in ("v1", "v2"):
        (root / "releases" / version).mkdir(parents=True)
    (root / "releases" / "v2" / "broken").touch()
    (root / "current").symlink_to(root / "releases" / "v1")
    return root


def target_yaml(name: str, root: Path, app_port: int, restart: list[str], extra: str = "") -> str:
    return release_dir_target(root, app_port, name=name, restart=repr(restart)) + extra


def config_yaml(port: int, tmp_path: Path, targets: str) -> str:
    (tmp_path / "token").write_text(TOKEN + "\n")
    head = daemon_yaml(
        port,
        tmp_path / "state",
        token_file=tmp_path / "token",
        level="debug",
        defaults="window: 1m, bake_time: 2s, cooldown: 1m",
    )
    # A test may end with a rollback under way: its daemon's stop need not wait 30 s for it.
    return f"""\
{head}server: {{shutdown_timeout: 2s}}
notify:
  - {{name: team, url: "json://127.0.0.1:9/hook?key=${{HOOK_SECRET}}"}}
targets:
{targets}"""


@pytest.fixture
def run_daemon(tmp_path: Path) -> Iterator[Callable[[str], DaemonProcess]]:
    """Start ``watchdogd run`` with ``WATCHDOGD_TOKEN``, ``HOOK_SECRET`` (the config uses it)
    and ``NEW_VAR`` (only a reloaded config will) in its environment."""
    started: list[DaemonProcess] = []

    def run(text: str) -> DaemonProcess:
        config = tmp_path / "watchdogd.yaml"
        config.write_text(text)
        port = int(text.split("listen: 127.0.0.1:", 1)[1].split("\n", 1)[0])
        env = {"WATCHDOGD_TOKEN": TOKEN, "HOOK_SECRET": HOOK_SECRET, "NEW_VAR": NEW_SECRET}
        daemon = start_daemon(config, port, tmp_path, env)
        started.append(daemon)
        daemon.wait_ready()
        return daemon

    yield run
    for daemon in started:
        daemon.stop()


def rolled_back(daemon: DaemonProcess, release_dir: Path, name: str = "app") -> str:
    """Deploy the broken v2, wait for the rollback; v2's release id."""
    daemon.wait_state(name, "healthy")
    deploy(release_dir, "v2")
    daemon.wait_state(name, "rolled_back")
    events = daemon.get(f"/api/v1/events?limit=500&target={name}").json()["events"]
    return next(e["data"]["release"] for e in events if e["message"] == "now running v2")


class TestQuarantinedRollbackTarget:
    def test_to_a_quarantined_release_is_refused_until_unquarantined(
        self,
        tmp_path: Path,
        release_dir: Path,
        app_port: int,
        run_daemon: Callable[[str], DaemonProcess],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """409 with the reason, CLI exit 1; after `unquarantine` the same request is taken."""
        targets = target_yaml("app", release_dir, app_port, ["/bin/true"])
        daemon = run_daemon(config_yaml(free_port(), tmp_path, targets))
        bad = rolled_back(daemon, release_dir)
        assert [q["image"] for q in daemon.target("app")["quarantined"]] == ["v2"]

        answer = daemon.post("/api/v1/targets/app/rollback", {"to": bad, "reason": "try"})
        assert answer.status_code == 409
        assert "quarantined" in answer.json()["error"]
        assert "watchdogd unquarantine app v2" in answer.json()["error"]
        client = ["--url", daemon.url, "--token", TOKEN]
        assert main(["rollback", "app", "--to", bad, *client]) == 1
        assert "v2 is quarantined" in capsys.readouterr().err
        assert os.readlink(release_dir / "current").endswith("v1")
        assert [q["image"] for q in daemon.target("app")["quarantined"]] == ["v2"]

        assert main(["unquarantine", "app", "v2", *client]) == 0
        answer = daemon.post("/api/v1/targets/app/rollback", {"to": bad, "reason": "fixed"})
        assert answer.status_code == 202, answer.text


class TestChildEnvironment:
    def test_command_step_and_restart_see_no_secret(
        self,
        tmp_path: Path,
        release_dir: Path,
        app_port: int,
        run_daemon: Callable[[str], DaemonProcess],
    ) -> None:
        """PATH, LANG, WATCHDOGD_* context and the step's env:, never the token or ${VAR}s."""
        step_env, restart_env = tmp_path / "step.env", tmp_path / "restart.env"
        playbook = f"""\
    playbook:
      - command: {{command: {dump_env(step_env)!r}, env: {{STEP_VAR: from-the-step}}}}
      - rollback: {{}}
"""
        targets = target_yaml("app", release_dir, app_port, dump_env(restart_env), playbook)
        daemon = run_daemon(config_yaml(free_port(), tmp_path, targets))
        rolled_back(daemon, release_dir)

        step = read_env(step_env)
        restart = read_env(restart_env)
        for env in (step, restart):
            assert "PATH" in env
            assert "WATCHDOGD_TOKEN" not in env
            assert HOOK_SECRET not in "\n".join(env.values())
            assert TOKEN not in "\n".join(env.values())
            assert env["WATCHDOGD_TARGET"] == "app"
        assert step["STEP_VAR"] == "from-the-step"
        assert step["WATCHDOGD_BAD_IMAGE"] == "v2"
        assert step["WATCHDOGD_RESTORE_IMAGE"] == "v1"
        assert restart["WATCHDOGD_RELEASE"] == "v1"
        assert restart["WATCHDOGD_RELEASE_DIR"] == str(release_dir / "current")
        assert "HOOK_SECRET" not in step
        assert "HOOK_SECRET" not in restart


class TestReleaseDirectoryLinks:
    def test_outside_link_and_loop_stay_unknown_while_another_target_rolls_back(
        self,
        tmp_path: Path,
        release_dir: Path,
        app_port: int,
        run_daemon: Callable[[str], DaemonProcess],
    ) -> None:
        """`current` -> ../outside/etc is never blessed as "etc"; a loop is a target error;
        the healthy target next to them still has its bad deploy rolled back."""
        outside = release_tree(tmp_path / "outside-app")
        (tmp_path / "outside-app" / "outside" / "etc").mkdir(parents=True)
        (outside / "current").unlink()
        (outside / "current").symlink_to("outside/etc")
        looping = release_tree(tmp_path / "looping-app")
        (looping / "current").unlink()
        (looping / "current").symlink_to("current")
        # The two odd targets have no checks: whatever they do comes from their links alone.
        targets = target_yaml("app", release_dir, app_port, ["/bin/true"]) + "".join(
            f'  - {{name: {name}, release_dir: {{path: "{root}", restart: [/bin/true]}}}}\n'
            for name, root in (("outside", outside), ("loop", looping))
        )
        daemon = run_daemon(config_yaml(free_port(), tmp_path, targets))

        rolled_back(daemon, release_dir)
        for name in ("outside", "loop"):
            status = daemon.target(name)
            assert status["current_release"] is None, status
            assert status["known_good_release"] is None, status
        events = daemon.get("/api/v1/events?limit=500").json()["events"]
        assert not [e for e in events if e["target"] in ("outside", "loop")]
        log = daemon.log.read_text()
        assert "is not a release directory under" in log
        assert "is a symlink loop" in log
        assert "Traceback" not in log
        assert "RuntimeError" not in log


class TestHostileReload:
    @pytest.mark.parametrize("broken", ["not-utf8", "deep", "secret-echo"])
    def test_a_hostile_config_is_a_counted_failed_reload(
        self,
        tmp_path: Path,
        release_dir: Path,
        app_port: int,
        run_daemon: Callable[[str], DaemonProcess],
        broken: str,
    ) -> None:
        """SIGHUP with a non-UTF-8, 20 000-deep or secret-bearing bad file: the reload fails,
        is counted, the old config runs on, and the log has no traceback and no new secret."""
        targets = target_yaml("app", release_dir, app_port, ["/bin/true"])
        text = config_yaml(free_port(), tmp_path, targets)
        daemon = run_daemon(text)
        daemon.wait_state("app", "healthy")
        config = tmp_path / "watchdogd.yaml"
        if broken == "not-utf8":
            config.write_bytes(text.encode().replace(b"name: app", b"name: \xffapp"))
        elif broken == "deep":
            config.write_text(text + "extra: " + "[" * 20_000 + "]" * 20_000 + "\n")
        else:  # a variable only the new file uses, in a field whose error quotes its value
            config.write_text(text.replace("bake_time: 2s", "bake_time: '${NEW_VAR}'"))
        failures = daemon.metric("watchdogd_config_reload_failures_total") or 0.0
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(
            "a counted failed reload",
            lambda: (daemon.metric("watchdogd_config_reload_failures_total") or 0) > failures,
            daemon,
        )
        log = wait_for(
            "the failure's log line",
            lambda: "config_reload_failed" in daemon.log.read_text() and daemon.log.read_text(),
            daemon,
        )
        assert NEW_SECRET not in log
        assert "Traceback" not in log
        assert daemon.process.poll() is None
        assert daemon.target("app")["state"] == "healthy"
