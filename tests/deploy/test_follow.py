"""HAProxy's servers follow their containers (``deploy.follow``), on plain values: a fake
engine that says where each container publishes, a recording reconciler, a real store.
The same against Docker and HAProxy: ``test_blue_green.py`` (a promoted release's port
moves) and the soak (engine restarts)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from watchdogd.config.loader import load_config_text
from watchdogd.config.schema import Config, TargetConfig
from watchdogd.core.deploy_plan import Stage
from watchdogd.deploy.deployment import Deployment
from watchdogd.deploy.follow import EndpointFollower
from watchdogd.deploy.green import Endpoint
from watchdogd.deploy.parts import Side
from watchdogd.deploy.proxy import Proxy, Slot, split_for, weighted_split
from watchdogd.errors import TrafficError
from watchdogd.store import Store
from watchdogd.traffic.split import TrafficSplit

CONFIG = """\
targets:
  - name: shop
    container: shop
    checks:
      - {name: api, type: http, url: "http://127.0.0.1:80/api"}
    traffic:
      haproxy: {socket: /run/haproxy/admin.sock, backend: app}
      upstream: {port: 8080}
"""


class FakeEngine:
    """Where each container publishes 8080 now; absent: the container is gone."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports

    async def inspect_container(self, name: str) -> dict[str, Any] | None:
        if name not in self.ports:
            return None
        binds = [{"HostIp": "127.0.0.1", "HostPort": str(self.ports[name])}]
        return {"NetworkSettings": {"Ports": {"8080/tcp": binds}}}


@dataclass
class RecordingReconciler:
    wanted_splits: dict[str, TrafficSplit] = field(default_factory=dict)
    applied: list[TrafficSplit] = field(default_factory=list)

    def wanted(self, backend: str) -> TrafficSplit | None:
        return self.wanted_splits.get(backend)

    refusals: int = 0  # the next applies that fail, as with HAProxy away

    async def apply(self, split: TrafficSplit) -> None:
        if self.refusals:
            self.refusals -= 1
            raise TrafficError("switch app", "cannot reach HAProxy", unreachable=True)
        self.wanted_splits[split.backend] = split
        self.applied.append(split)


@dataclass
class FakeDeployment:
    stage: Stage
    blue: Side
    green: Side
    id: str = "d1"
    journaled: int = 0

    def journal(self) -> None:
        self.journaled += 1


def slot(server: str, port: int) -> Slot:
    return Slot(server, Endpoint("127.0.0.1", port))


@dataclass
class World:
    config: Config
    engine: FakeEngine
    reconciler: RecordingReconciler
    store: Store
    active: dict[str, Deployment]

    @property
    def target(self) -> TargetConfig:
        return self.config.targets[0]

    def follower(self) -> EndpointFollower:
        proxy = Proxy(cast(Any, self.reconciler), "app")
        return EndpointFollower(
            config=lambda: self.config,
            store=self.store,
            engine=lambda: cast(Any, self.engine),
            proxy=lambda _target: proxy,
            active=self.active,
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    config = load_config_text(CONFIG, "watchdogd.yaml")
    with Store(tmp_path / "wd.db") as store:
        yield World(config, FakeEngine({}), RecordingReconciler(), store, {})


class TestAfterADeploy:
    async def test_the_serving_server_follows_its_container_and_the_record_remembers(
        self, world: World
    ) -> None:
        serving = slot("wd-abc", 32768)
        world.reconciler.wanted_splits["app"] = split_for("app", serving, [slot("blue", 9000)])
        world.store.save_deploy(
            "d1",
            target="shop",
            image="shop:v2",
            stage="promoted",
            body={"blue": {"container": "shop"}, "green": Side("shop", None, serving).to_dict()},
        )
        promoted = world.store.deploy("d1")
        world.engine.ports["shop"] = 32790  # restarted: a new engine-chosen port

        await world.follower().look()

        assert len(world.reconciler.applied) == 1
        applied = world.reconciler.applied[0]
        assert applied.addresses == {"wd-abc": ("127.0.0.1", 32790)}
        assert dict(applied.weights) == {"wd-abc": 100, "blue": 0}
        record = world.store.deploy("d1")
        assert record is not None
        assert promoted is not None
        assert record.body["green"]["slot"]["port"] == 32790
        assert (record.stage, record.ended_at) == ("promoted", promoted.ended_at)

        await world.follower().look()  # where it is now: nothing more to do
        assert len(world.reconciler.applied) == 1

    async def test_a_container_that_publishes_nothing_now_is_left_alone(self, world: World) -> None:
        """Stopped, gone or the engine away: the server keeps its place until the container
        publishes again."""
        world.reconciler.wanted_splits["app"] = split_for("app", slot("wd-abc", 32768), [])
        await world.follower().look()
        assert world.reconciler.applied == []

    async def test_servers_of_haproxys_own_config_are_never_moved(self, world: World) -> None:
        world.reconciler.wanted_splits["app"] = split_for("app", slot("blue", 9000), [])
        world.engine.ports["shop"] = 32790
        await world.follower().look()
        assert world.reconciler.applied == []


class TestDuringADeploy:
    def deployment(self, world: World, stage: Stage) -> FakeDeployment:
        blue = Side("shop", None, slot("wd-blue", 32768))
        green = Side("shop-green-1", None, slot("wd-green", 32769))
        deployment = FakeDeployment(stage, blue, green)
        world.active["shop"] = cast(Deployment, deployment)
        world.reconciler.wanted_splits["app"] = weighted_split(
            "app", green.slot or slot("", 0), blue.slot or slot("", 0), 25
        )
        return deployment

    async def test_a_moved_green_is_followed_in_the_split_and_the_journal(
        self, world: World
    ) -> None:
        deployment = self.deployment(world, Stage.BAKING)
        world.engine.ports.update({"shop": 32768, "shop-green-1": 32791})

        await world.follower().look()

        assert deployment.green.slot == slot("wd-green", 32791)
        assert deployment.blue.slot == slot("wd-blue", 32768)
        assert deployment.journaled == 1
        split = world.reconciler.applied[-1]
        assert split.addresses["wd-green"] == ("127.0.0.1", 32791)
        assert dict(split.weights) == {"wd-green": 25, "wd-blue": 75}

    async def test_with_haproxy_away_the_next_look_tries_again(self, world: World) -> None:
        deployment = self.deployment(world, Stage.BAKING)
        world.engine.ports.update({"shop": 32768, "shop-green-1": 32791})
        world.reconciler.refusals = 1

        await world.follower().look()
        assert deployment.green.slot == slot("wd-green", 32769)
        assert deployment.journaled == 0

        await world.follower().look()
        assert deployment.green.slot == slot("wd-green", 32791)
        assert world.reconciler.applied[-1].addresses["wd-green"] == ("127.0.0.1", 32791)

    async def test_while_promoting_only_green_is_followed(self, world: World) -> None:
        """Blue's name passes to green's container while promoting: blue's server must not
        be pointed at it."""
        deployment = self.deployment(world, Stage.PROMOTING)
        world.engine.ports.update({"shop": 32795, "shop-green-1": 32769})

        await world.follower().look()

        assert deployment.blue.slot == slot("wd-blue", 32768)
        assert world.reconciler.applied == []
        assert deployment.journaled == 0
