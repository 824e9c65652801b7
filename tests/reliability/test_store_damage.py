"""A partly damaged state store (one bad page of the audit table) is not reported ready, and
``watchdogd_store_errors_total`` counts it (issue 11): SQLite opens such a file and writes to
its sound pages, so only a check of the whole file finds it before a rollback needs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.daemon import TOKEN, start_daemon
from tests.support.ports import free_port
from tests.support.store import damaged_store
from tests.surfaces.conftest import release_dir_config, serve_release_app, wait_for
from watchdogd.store import DB_FILENAME


def test_a_damaged_store_is_not_ready(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    damaged_store(state / DB_FILENAME)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    with serve_release_app(tmp_path / "app", {"v1": "ok"}) as app:
        config = tmp_path / "watchdogd.yaml"
        config.write_text(
            release_dir_config(port=port, state=state, token_file=token_file, app=app)
        )
        daemon = start_daemon(config, port, tmp_path)
        try:

            def readiness() -> dict[str, Any] | None:
                if daemon.process.poll() is not None:
                    raise AssertionError(daemon.log.read_text()[-3000:])
                try:
                    answer = daemon.get("/readyz")
                except httpx.HTTPError:
                    return None
                body: dict[str, Any] = answer.json()
                # Until the sources start, that is a reason too (the integrity check runs
                # before them, so a loaded machine shows both for a while).
                return None if "sources not started" in body.get("reasons", []) else body

            answer = wait_for("the daemon to answer /readyz", readiness)
            assert answer["status"] == "not ready", answer
            [reason] = answer["reasons"]
            assert reason.startswith("state store damaged: ")
            assert (daemon.metric("watchdogd_store_errors_total") or 0) >= 1
            assert daemon.get("/healthz").status_code == 200  # alive, only not ready
            assert "store_damaged" in daemon.log.read_text()
        finally:
            daemon.stop()
