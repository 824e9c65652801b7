"""The wiring builds controllers from explicit dependencies, and a reload that drops a target
frees its controller at once: no reference cycle (controller <-> runner, wiring <-> daemon)
keeps it alive until a garbage collection, which the daemon no longer runs on reload."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator
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


def traffic_config(tmp_path: Path) -> Config:
    """Target ``a`` as above, and a container target ``shop`` behind HAProxy with a log
    socket. No Docker engine nor HAProxy is touched: nothing here deploys."""
    text = f"""\
state_dir: {tmp_path}
notify: []
docker: {{host: unix://{tmp_path / "no-engine.sock"}}}
targets:
  - name: a
    release_dir: {{path: {tmp_path / "a"}, restart: [/bin/true]}}
    checks:
      - {{name: api, type: http, url: "http://127.0.0.1:9/", interval: 1h}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
  - name: shop
    container: shop
    checks:
      - {{name: api, type: http, url: "http://127.0.0.1:9/", interval: 1h}}
    traffic:
      haproxy:
        socket: {tmp_path / "no-haproxy.sock"}
        backend: app
        log_socket: {tmp_path / "haproxy-log.sock"}
      upstream: {{port: 8080}}
"""
    return load_config_text(text)


DEPLOY_LOOPS = {"traffic-keeper", "endpoint-follower"}


@contextlib.asynccontextmanager
async def started(tmp_path: Path) -> AsyncIterator[tuple[Wiring, Supervisor, Metrics]]:
    """A wiring of target ``a`` as the daemon starts it: built, incidents resumed."""
    metrics = Metrics()
    supervisor = Supervisor(metrics)
    with Store.in_state_dir(tmp_path) as store:
        wiring = Wiring(config(tmp_path, "a"), store=store, metrics=metrics, supervisor=supervisor)
        await wiring.open()
        try:
            wiring.build()
            await wiring.resume_incidents()
            yield wiring, supervisor, metrics
        finally:
            await wiring.stop_sources()
            await supervisor.stop_all()
            await wiring.close()


async def test_the_deploy_manager_is_built_at_the_first_need(tmp_path: Path) -> None:
    """Without a target with traffic nor an open deploy, the daemon builds no deploy manager
    (issue #16: its HAProxy code stays out of memory); a deploy API call builds it, with
    its loops, and it is built once."""
    async with started(tmp_path) as (wiring, supervisor, metrics):
        assert not DEPLOY_LOOPS & set(supervisor.names())
        assert "watchdogd_deploys" not in metrics.render().decode()
        assert wiring.status(wiring.controllers["a"])["deploy"] is None

        manager = await wiring.deploy_manager()
        assert await wiring.deploy_manager() is manager
        assert set(supervisor.names()) >= DEPLOY_LOOPS
        assert "watchdogd_deploys" in metrics.render().decode()
        assert manager.status("a", None) == {"deploy": None}


async def test_a_reload_that_adds_traffic_builds_it(tmp_path: Path) -> None:
    """A reload that adds a target with traffic builds the manager: the target's driver
    switches HAProxy after a rollback, the loops run and its log socket is bound."""
    async with started(tmp_path) as (wiring, supervisor, _):
        await wiring.reload(traffic_config(tmp_path))
        assert type(wiring.controllers["shop"].driver).__name__ == "TrafficDriver"
        assert set(supervisor.names()) >= DEPLOY_LOOPS
        assert (tmp_path / "haproxy-log.sock").is_socket()
