"""Reloads run one at a time, in the order asked: each waits for its config's check process
(``config.out_of_process``), and a SIGHUP's config must never be overwritten by an earlier
SIGHUP's whose check happened to finish later."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from watchdogd.config import Config
from watchdogd.config.loader import load_config_text
from watchdogd.daemon import lifecycle
from watchdogd.daemon.lifecycle import Daemon


def config(tmp_path: Path, bake_time: str) -> Config:
    return load_config_text(
        f"state_dir: {tmp_path / 'state'}\ndefaults: {{bake_time: {bake_time}}}\n"
    )


async def test_a_later_reload_is_applied_last_even_when_its_check_is_faster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = Daemon(str(tmp_path / "watchdogd.yaml"), config(tmp_path, "5m"))
    first, second = config(tmp_path, "1m"), config(tmp_path, "2m")
    checks: list[str] = []
    first_may_finish = asyncio.Event()

    async def slow_then_fast(_path: str) -> Config:
        if not checks:
            checks.append("first")
            await first_may_finish.wait()
            return first
        checks.append("second")
        return second

    monkeypatch.setattr(lifecycle, "reload_config", slow_then_fast)
    try:
        earlier = asyncio.create_task(daemon.reload())
        later = asyncio.create_task(daemon.reload())
        await asyncio.sleep(0.05)
        assert checks == ["first"]  # the second waits for the first, not beside it
        first_may_finish.set()
        assert await earlier is True
        assert await later is True
        assert checks == ["first", "second"]
        assert daemon.config is second
    finally:
        daemon.store.close()
