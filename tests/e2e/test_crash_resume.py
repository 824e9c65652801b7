"""SIGKILL the daemon while each playbook step is in flight, restart it, and check the resume
rules of the issue: the incident completes once; a non-idempotent step that completed never
runs again; one that was in flight is reported ``interrupted`` and not run again; and no second
rollback is started.

The daemon pauses inside a step through its TEST-ONLY hook (``WATCHDOGD_TEST_PAUSE_STEP`` and
``WATCHDOGD_TEST_PAUSE_FILE``, see ``watchdogd.daemon.wiring``): the step's ``started`` row is
committed, then the hook writes the marker file and sleeps, and the test kills the process.
The restarted daemon runs without the hook. Side effects are counted where they land: the
``command`` step appends a line to a file, the ``sql`` step inserts a row, the release
directory's restart command (run by each ``rollback``) appends a line too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from tests.e2e.conftest import (
    AppDeployment,
    Daemons,
    ReleaseDir,
    comparable,
    e2e_config_head,
    events,
    notifications,
    sigkill,
    wait_event,
    wait_file,
)
from tests.support.daemon import DaemonProcess
from tests.support.images import AppImages, wait_http
from tests.support.services import PostgresServer, RedisServer
from tests.support.sink import HttpSink
from watchdogd.config.steps import IDEMPOTENT_ACTIONS
from watchdogd.playbook.crash_points import PAUSE_FILE_ENV, PAUSE_STEP_ENV
from watchdogd.store import JournalEntry, StepStatus, Store

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

REDIS_DB = 6
PLAYBOOK = ["notify", "command", "sql", "redis_invalidate", "rollback", "wait_healthy", "notify"]
ROLLBACK = PLAYBOOK.index("rollback")


@pytest.fixture
def effects_table(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty ``crash_effects`` table; the DSN."""
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS crash_effects")
        conn.execute("CREATE TABLE crash_effects (tx bigint)")
    yield postgres_server.dsn
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS crash_effects")


@pytest.fixture
def cache(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=REDIS_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def base_config(directory: Path, port: int, sink: HttpSink) -> str:
    defaults = "window: 1m, bake_time: 1s, cooldown: 5m, stop_timeout: 2s"
    return e2e_config_head(
        directory, port, sink.port, defaults=defaults, server="shutdown_timeout: 5s"
    )


def journal(state_dir: Path, incident: str) -> dict[int, JournalEntry]:
    """The incident's step journal, read from the state store once the daemon has stopped."""
    store = Store.in_state_dir(state_dir)
    try:
        return {entry.step_index: entry for entry in store.journal_for(incident)}
    finally:
        store.close()


def one_incident(daemon: DaemonProcess) -> str:
    """The id of the only incident in the audit log; fails if there is more than one."""
    ids = {e["incident_id"] for e in events(daemon) if e["incident_id"] is not None}
    assert len(ids) == 1, ids
    return ids.pop()


def count_kind(daemon: DaemonProcess, kind: str) -> int:
    return len(events(daemon, kind))


class TestCrashInEachStepOfAReleaseDirPlaybook:
    @pytest.fixture
    def config(
        self,
        tmp_path: Path,
        daemons: Daemons,
        http_sink: HttpSink,
        release_dir: ReleaseDir,
        effects_table: str,
        redis_server: RedisServer,
    ) -> Path:
        effects = tmp_path / "effects"
        effects.mkdir()
        (effects / "insert.sql").write_text("INSERT INTO crash_effects VALUES (txid_current());\n")
        redis_url = f"redis://{redis_server.host}:{redis_server.port}/{REDIS_DB}"
        path = tmp_path / "watchdogd.yaml"
        path.write_text(
            base_config(tmp_path, daemons.port, http_sink)
            + f"""\
targets:
  - name: app
    release_dir:
      path: {release_dir.root}
      restart: [sh, -c, "echo $WATCHDOGD_RELEASE >> {effects / "restarts.log"}"]
    checks:
      - {{name: api, type: http, url: "http://127.0.0.1:{release_dir.port}/api",
         interval: 200ms, timeout: 1s}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
    playbook:
      - notify: team
      - command: {{command: [sh, -c, "echo $WATCHDOGD_INCIDENT >> {effects / "command.log"}"]}}
      - sql: {{dsn: "{effects_table}", file: {effects / "insert.sql"}}}
      - redis_invalidate: {{url: "{redis_url}", pattern: "cache:*"}}
      - rollback: {{}}
      - wait_healthy: {{timeout: 20s}}
      - notify: team
"""
        )
        return path

    @pytest.mark.parametrize(
        "crash_at", range(len(PLAYBOOK)), ids=[f"{i}-{a}" for i, a in enumerate(PLAYBOOK)]
    )
    def test_resume_after_sigkill(
        self,
        crash_at: int,
        config: Path,
        daemons: Daemons,
        release_dir: ReleaseDir,
        http_sink: HttpSink,
        effects_table: str,
        cache: redis.Redis,
        tmp_path: Path,
    ) -> None:
        """Killed in step `crash_at`: one incident, each effect once, the in-flight one reported."""
        action = PLAYBOOK[crash_at]
        marker = tmp_path / "paused"
        cache.set("cache:page:1", "stale")
        cache.set("user:1", "keep")
        first = daemons.start(config, {PAUSE_STEP_ENV: str(crash_at), PAUSE_FILE_ENV: str(marker)})
        first.wait_state("app", "healthy", timeout=60)
        release_dir.deploy("v2")
        wait_file(marker, first)
        assert marker.read_text().split() == [str(crash_at), action]
        sigkill(first)
        # The crash really came mid-playbook: nothing after the paused step has happened.
        assert release_dir.running() == ("v2" if crash_at <= ROLLBACK else "v1")

        second = daemons.start(config)
        finished = wait_event(second, "incident_finished", timeout=60)
        incident = one_incident(second)
        assert finished["data"]["state"] == "succeeded", finished
        assert count_kind(second, "incident_started") == 1
        assert count_kind(second, "incident_resumed") == 1
        assert count_kind(second, "incident_finished") == 1
        assert release_dir.running() == "v1"
        status = second.wait_state("app", "rolled_back")
        assert [q["image"] for q in status["quarantined"]] == ["v2"]

        effects = tmp_path / "effects"
        # Every effect at most once; the one in flight at the crash not at all, if not
        # idempotent. One rollback: the restart command ran once.
        command_log = effects / "command.log"
        if action == "command":
            assert not command_log.exists()
        else:
            assert command_log.read_text().split() == [incident]
        with psycopg.connect(effects_table) as conn:
            rows = conn.execute("SELECT count(*) FROM crash_effects").fetchone()
        assert rows == ((0,) if action == "sql" else (1,))
        assert (effects / "restarts.log").read_text().split() == ["v1"]
        assert cache.keys("cache:*") == []
        assert cache.get("user:1") == b"keep"

        steps = finished["data"]["steps"]
        idempotent = action in IDEMPOTENT_ACTIONS
        expected = ["succeeded"] * len(PLAYBOOK)
        if not idempotent:
            expected[crash_at] = "interrupted"
        assert [s["status"] for s in steps] == expected
        interrupted = events(second, "step_interrupted")
        rerun = events(second, "step_rerun")
        if idempotent:
            assert (interrupted, [e["data"]["step"] for e in rerun]) == ([], [crash_at])
        else:
            assert ([e["data"]["step"] for e in interrupted], rerun) == ([crash_at], [])

        sent = [n["event"] for n in notifications(http_sink.requests)]
        between = [] if idempotent else ["step_interrupted"]
        assert sent == ["rollback_started", *between, "rollback_finished"]

        assert second.stop() == 0
        entries = journal(tmp_path / "state", incident)
        assert sorted(entries) == list(range(len(PLAYBOOK)))
        for index, entry in entries.items():
            if index != crash_at:
                assert (entry.status, entry.attempt) == (StepStatus.SUCCEEDED, 1), entry
            elif idempotent:
                assert (entry.status, entry.attempt) == (StepStatus.SUCCEEDED, 2), entry
            else:
                assert (entry.status, entry.attempt) == (StepStatus.INTERRUPTED, 1), entry


@pytest.mark.docker
class TestCrashInAContainerRollback:
    def test_resumed_rollback_swaps_once(
        self,
        app_images: AppImages,
        app_deployment: AppDeployment,
        daemons: Daemons,
        http_sink: HttpSink,
        tmp_path: Path,
    ) -> None:
        """Killed in the container's rollback step: the restart finishes the same swap, once."""
        app = app_deployment
        app.start(app_images.v1)
        original = app.inspect()
        config = tmp_path / "watchdogd.yaml"
        config.write_text(
            base_config(tmp_path, daemons.port, http_sink)
            + f"""\
targets:
  - name: shop
    container: {app.name}
    checks:
      - {{name: health, type: container_health}}
      - {{name: api, type: http, url: "{app.url}/cgi-bin/api", interval: 300ms, timeout: 2s}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
    playbook:
      - notify: team
      - rollback: {{}}
      - wait_healthy: {{timeout: 25s}}
      - notify: team
"""
        )
        marker = tmp_path / "paused"
        first = daemons.start(config, {PAUSE_STEP_ENV: "1", PAUSE_FILE_ENV: str(marker)})
        first.wait_state("shop", "healthy", timeout=60)
        app.redeploy(app_images.v2)
        bad = app.inspect()
        wait_file(marker, first)
        sigkill(first)
        assert app.inspect()["Id"] == bad["Id"]  # killed before the swap began

        second = daemons.start(config)
        finished = wait_event(second, "incident_finished", timeout=60)
        incident = one_incident(second)
        assert finished["data"]["state"] == "succeeded", finished
        assert [e["data"]["step"] for e in events(second, "step_rerun")] == [1]
        assert wait_http(f"{app.url}/cgi-bin/version", 15).text.strip() == "v1"
        restored = app.inspect()
        assert restored["Image"] == app_images.ids["v1"]
        assert comparable(restored) == comparable(original)
        same_name = app.client.containers.list(all=True, filters={"name": app.name})
        assert [c.name for c in same_name] == [app.name]  # no second swap left anything behind
        sent = [n["event"] for n in notifications(http_sink.requests)]
        assert sent == ["rollback_started", "rollback_finished"]

        assert second.stop() == 0
        entries: dict[int, Any] = journal(tmp_path / "state", incident)
        assert [(e.action, e.status, e.attempt) for e in entries.values()] == [
            ("notify", StepStatus.SUCCEEDED, 1),
            ("rollback", StepStatus.SUCCEEDED, 2),
            ("wait_healthy", StepStatus.SUCCEEDED, 1),
            ("notify", StepStatus.SUCCEEDED, 1),
        ]
