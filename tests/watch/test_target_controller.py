"""The per-target controller with a fake driver and a real SQLite store: baking needs evidence,
and a target without a container (mid-deploy) is not blamed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from watchdogd.config import load_config_text
from watchdogd.core.guards import TriggerKind
from watchdogd.core.incident import TargetState
from watchdogd.errors import TargetError
from watchdogd.metrics.registry import Metrics
from watchdogd.model import Release, Trigger
from watchdogd.store import Store
from watchdogd.targets.base import ExecResult
from watchdogd.watch.controller import ABSENT_GRACE, TargetController

CONFIG = """\
defaults: {bake_time: 10s, window: 1m}
targets:
  - name: web
    container: web
    checks:
      - {name: api, type: http, url: "http://127.0.0.1:1/api"}
    gates:
      - {check: api, metric: error_rate, above: 1%}
"""


class FakeDriver:
    """Runs whatever release the test sets; records restores."""

    target = "web"

    def __init__(self, release: Release | None) -> None:
        self.running = release
        self.restores: list[Release] = []

    async def current(self) -> Release | None:
        return self.running

    async def restore(self, release: Release, stop_timeout: float) -> None:
        self.restores.append(release)
        self.running = release

    async def healthy(self) -> bool | None:
        return None

    async def exec(
        self,
        command: Sequence[str],
        *,
        user: str | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        return ExecResult(0, "")


V1 = Release("web", "sha256:v1", "cfg", "app:v1")
V2 = Release("web", "sha256:v2", "cfg", "app:v2")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.in_state_dir(tmp_path)


def controller(store: Store, driver: FakeDriver) -> TargetController:
    config = load_config_text(CONFIG)
    return TargetController(
        config.targets[0], config.defaults, driver=driver, store=store, metrics=Metrics()
    )


class TestBaking:
    async def test_bake_waits_for_a_sample(self, store: Store) -> None:
        """bake_time alone does not make a release known-good: its checks must have seen it."""
        target = controller(store, FakeDriver(V1))
        await target.observe_release(0.0)
        await target.tick(60.0)
        assert target.machine.state is TargetState.BAKING
        target.recorders["api"].probe(60.5, ok=True, latency=0.01)
        await target.tick(61.0)
        assert target.machine.state is TargetState.HEALTHY


class TestReleaseInfo:
    async def test_known_good_and_quarantined_releases_are_exported(self, store: Store) -> None:
        """watchdogd_release_info's view lists current, known-good and quarantined releases."""
        target = controller(store, FakeDriver(V1))
        await target.observe_release(0.0)
        target.recorders["api"].probe(1.0, ok=True, latency=0.01)
        await target.tick(20.0)
        store.quarantine("web", V2.image, "test")
        target.refresh_catalogue()
        releases = target.view(21.0).releases
        assert ("app:v1", "current") in releases
        assert ("app:v1", "known_good") in releases
        assert (V2.image, "quarantined") in releases


class TestDeployGap:
    async def test_failures_while_no_container_exists_are_not_blamed(self, store: Store) -> None:
        """Between `rm -f` and `run`, hard-down probes neither roll back nor freeze."""
        driver = FakeDriver(V1)
        target = controller(store, driver)
        await target.observe_release(0.0)
        target.recorders["api"].probe(1.0, ok=True, latency=0.01)
        await target.tick(20.0)
        assert target.machine.state is TargetState.HEALTHY
        driver.running = None  # the deploy script removed the container
        await target.observe_release(21.0)
        for second in range(22, 27):
            target.recorders["api"].probe(float(second), ok=False, latency=None)
            await target.tick(float(second))
        assert target.machine.state is TargetState.HEALTHY
        assert driver.restores == []

    async def test_a_container_gone_for_good_counts_again(self, store: Store) -> None:
        """After the grace period, failures of a vanished container are judged again."""
        driver = FakeDriver(V1)
        target = controller(store, driver)
        await target.observe_release(0.0)
        target.recorders["api"].probe(1.0, ok=True, latency=0.01)
        await target.tick(20.0)
        driver.running = None
        await target.observe_release(21.0)
        later = 21.0 + ABSENT_GRACE + 1
        for offset in range(3):
            target.recorders["api"].probe(later + offset, ok=False, latency=None)
        await target.tick(later + 3)
        # Breached; with no other known-good release the rollback is refused and audited.
        assert target.machine.state is TargetState.BREACHED
        kinds = [event.kind for event in store.events(target="web")]
        assert "rollback_refused" in kinds


class HealthyDriver(FakeDriver):
    async def healthy(self) -> bool | None:
        return True


class TestAlertBeforePoll:
    async def test_an_alert_names_the_release_that_runs_now(self, store: Store) -> None:
        """An alert that arrives before the poll has seen a deploy blames the new release and
        puts back the newest known-good one, not the one before it (found by the soak)."""
        driver = HealthyDriver(V1)
        target = controller(store, driver)
        for at, release in ((0.0, V1), (30.0, V2)):
            driver.running = release
            await target.observe_release(at)
            target.recorders["api"].probe(at + 1, ok=True, latency=0.01)
            await target.tick(at + 20)
            assert target.machine.state is TargetState.HEALTHY
        v3 = Release("web", "sha256:v3", "cfg", "app:v3")
        driver.running = v3  # deployed; no poll since
        await target.request(Trigger("SoakBad", "alert", "firing"), TriggerKind.ALERT)
        task = target.playbook_task
        assert task is not None
        await task
        incident = store.incidents("web")[0]
        assert incident.bad_release is not None
        assert incident.bad_release.image == v3.image
        assert driver.restores == [V2]
        assert [q.image for q in store.quarantined("web")] == [v3.image]


class FlakyEngineDriver(FakeDriver):
    """Raises TargetError while ``away``, as the container driver does without an engine."""

    away = False

    async def current(self) -> Release | None:
        if self.away:
            raise TargetError("list containers: connection refused")
        return self.running


class TestEngineAway:
    async def test_failures_while_the_engine_is_away_are_not_blamed(self, store: Store) -> None:
        """The engine stopping stops the app: its probes fail, but no release is blamed and no
        rollback (that could not be done) starts; once the engine answers, judging resumes
        on fresh windows (found by the soak)."""
        driver = FlakyEngineDriver(V1)
        target = controller(store, driver)
        await target.observe_release(0.0)
        target.recorders["api"].probe(1.0, ok=True, latency=0.01)
        await target.tick(20.0)
        assert target.machine.state is TargetState.HEALTHY
        driver.away = True
        await target.observe_release(21.0)
        for second in range(22, 40):
            target.recorders["api"].probe(float(second), ok=False, latency=None)
            await target.tick(float(second))
        assert target.machine.state is TargetState.HEALTHY
        assert store.incidents("web") == []
        driver.away = False
        await target.observe_release(40.0)
        assert target.recorders["api"].stats(40.0).count == 0
        for second in range(41, 45):
            target.recorders["api"].probe(float(second), ok=False, latency=None)
        await target.tick(45.0)
        assert target.machine.state is TargetState.BREACHED  # judged again once reachable

    async def test_a_breach_right_after_the_engine_left_is_not_blamed(self, store: Store) -> None:
        """The app's probes fail before the next poll has seen the engine go: the breach asks
        the driver first, and starts nothing (a rollback would fail on the missing engine)."""
        driver = FlakyEngineDriver(V1)
        target = controller(store, driver)
        await target.observe_release(0.0)
        target.recorders["api"].probe(1.0, ok=True, latency=0.01)
        await target.tick(20.0)
        driver.away = True  # no poll since
        for second in range(21, 30):
            target.recorders["api"].probe(float(second), ok=False, latency=None)
        await target.tick(30.0)
        assert store.incidents("web") == []
        assert target.machine.state is TargetState.HEALTHY


WARM_CONFIG = CONFIG.replace(
    "defaults: {bake_time: 10s, window: 1m}", "defaults: {bake_time: 60s, window: 1m, warmup: 30s}"
)


def warm_controller(store: Store, driver: FakeDriver) -> TargetController:
    config = load_config_text(WARM_CONFIG)
    return TargetController(
        config.targets[0], config.defaults, driver=driver, store=store, metrics=Metrics()
    )


class TestWarmUp:
    async def test_warm_up_samples_are_shown_not_judged(self, store: Store) -> None:
        """Half the probes failing during warm-up is not judged, and does not count after it."""
        target = warm_controller(store, FakeDriver(V1))
        await target.observe_release(0.0)
        for second in range(1, 29):
            target.recorders["api"].probe(float(second), ok=second % 2 == 0, latency=0.01)
        await target.tick(29.0)
        assert target.warming_up(29.0)
        [result] = target.view(29.0).gates
        assert result.verdict == "unknown"
        assert "warming up" in result.result.reason
        assert target.view(29.0).checks[0].stats.count == 28  # shown
        await target.tick(31.0)
        assert not target.warming_up(31.0)
        assert target.recorders["api"].stats(31.0).count == 0  # not counted afterwards
        assert target.machine.state is TargetState.BAKING

    async def test_hard_down_is_judged_during_warm_up(self, store: Store) -> None:
        """Failures spanning 1.5 s breach even while warming up."""
        target = warm_controller(store, FakeDriver(V1))
        await target.observe_release(0.0)
        for at in (1.0, 1.5, 2.0, 2.5):
            target.recorders["api"].probe(at, ok=False, latency=None)
        await target.tick(3.0)
        assert target.machine.state is TargetState.BREACHED
