"""The wiring builds controllers from explicit dependencies, and a reload that drops a target
frees its controller at once: no reference cycle (controller <-> runner, wiring <-> daemon)
keeps it alive until a garbage collection, which the daemon no longer runs on reload."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

from watchdogd.config import Config
from watchdogd.config.loader import load_config_text
from watchdogd.daemon.supervisor import Supervisor
from watchdogd.daemon.wiring import Wiring
from watchdogd.metrics.registry import Metrics
from watchdogd.store import Store


def config(tmp_path: Path, *names: str) -> Config:
    targets = "".join(
        f"""\
  - name: {name}
    release_dir: {{path: {tmp_path / name}, restart: [/bin/true]}}
    checks:
      - {{name: api, type: http, url: "http://127.0.0.1:9/", interval: 1h}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
"""
        for name in names
    )
    return load_config_text(f"state_dir: {tmp_path}\nnotify: []\ntargets:\n{targets}")


async def test_a_dropped_target_is_freed_without_a_collection(tmp_path: Path) -> None:
    metrics = Metrics()
    supervisor = Supervisor(metrics)
    with Store.in_state_dir(tmp_path) as store:
        wiring = Wiring(
            config(tmp_path, "a", "b"), store=store, metrics=metrics, supervisor=supervisor
        )
        await wiring.open()
        try:
            wiring.build()
            wiring.start_sources(wiring.config.targets)
            dropped = weakref.ref(wiring.controllers["b"])
            kept = wiring.controllers["a"]
            gc.disable()
            try:
                wiring.apply(config(tmp_path, "a"))
                await asyncio.sleep(0)  # let the cancelled source task finish
                await asyncio.sleep(0)
                assert dropped() is None
            finally:
                gc.enable()
            assert wiring.controllers == {"a": kept}  # unchanged: the same controller
        finally:
            await wiring.stop_sources()
            await supervisor.stop_all()
            await wiring.close()
