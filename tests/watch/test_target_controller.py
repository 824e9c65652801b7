"""The per-target controller with a fake driver, a fake clock and a real SQLite store: baking
needs evidence, a target without a container (mid-deploy) is not blamed, and the policy's
decisions (guards, freeze, unfreeze, dry run, quarantine) are carried out."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.fakes import FakeDriver
from watchdogd.config.loader import load_config_text
from watchdogd.core.incident import TargetState
from watchdogd.core.policy import ABSENT_GRACE
from watchdogd.errors import ControlRefused, TargetError
from watchdogd.metrics.registry import Metrics
from watchdogd.model import NEVER_STARTED, Release, Starts, Trigger, TriggerKind
from watchdogd.store import Store
from watchdogd.watch.controller import TargetController
from watchdogd.watch.presence import RESTART_GRACE

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


V1 = Release("web", "sha256:v1", "cfg", "app:v1")
V2 = Release("web", "sha256:v2", "cfg", "app:v2")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.in_state_dir(tmp_path)


class FakeClock:
    """Monotonic seconds the test moves; wall time is a fixed offset from it (anchored at the
    real time of its creation, since the store stamps incidents with the real clock)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._epoch = time.time()

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self._epoch + self.now


class Told:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    async def __call__(self, target: str, message: str) -> None:
        self.messages.append((target, message))


def controller(
    store: Store,
    driver: FakeDriver,
    text: str = CONFIG,
    clock: FakeClock | None = None,
    told: Told | None = None,
) -> TargetController:
    config = load_config_text(text)
    clock = clock or FakeClock()
    return TargetController(
        config.targets[0],
        config.defaults,
        driver=driver,
        store=store,
        metrics=Metrics(),
        clock=clock,
        wall=clock.wall,
        notify=told,
    )


# A playbook without wait_healthy: the judge of a restore is tested in tests/watch/test_evidence.
ROLLBACK_ONLY = (
    CONFIG.replace("window: 1m}", "window: 1m, cooldown: 1m}")
    + """\
    playbook:
      - rollback: {}
"""
)


async def known_good(target: TargetController, at: float = 0.0) -> None:
    """Bake the running release to known-good, starting at ``at``."""
    await target.observe_release(at)
    target.recorders["api"].probe(at + 1, ok=True, latency=0.01)
    await target.tick(at + 20)
    assert target.machine.state is TargetState.HEALTHY


async def fail(target: TargetController, at: float, count: int = 3) -> None:
    for offset in range(count):
        target.recorders["api"].probe(at + offset, ok=False, latency=None)
    await target.tick(at + count)


class TestBaking:
    async def test_bake_waits_for_a_sample(self, store: Store) -> None:
        """bake_time alone does not make a release known-good: its checks must have seen it."""
        target = controller(store, FakeDriver(V1, target="web"))
        await target.observe_release(0.0)
        await target.tick(60.0)
        assert target.machine.state is TargetState.BAKING
        target.recorders["api"].probe(60.5, ok=True, latency=0.01)
        await target.tick(61.0)
        assert target.machine.state is TargetState.HEALTHY


class TestReleaseInfo:
    async def test_known_good_and_quarantined_releases_are_exported(self, store: Store) -> None:
        """watchdogd_release_info's view lists current, known-good and quarantined releases."""
        target = controller(store, FakeDriver(V1, target="web"))
        await target.observe_release(0.0)
        target.recorders["api"].probe(1.0, ok=True, latency=0.01)
        await target.tick(20.0)
        store.quarantine("web", V2.image, "test")
        target.records.refresh()
        releases = target.view(21.0).releases
        assert ("app:v1", "current") in releases
        assert ("app:v1", "known_good") in releases
        assert (V2.image, "quarantined") in releases


class TestDeployGap:
    async def test_failures_while_no_container_exists_are_not_blamed(self, store: Store) -> None:
        """Between `rm -f` and `run`, hard-down probes neither roll back nor freeze."""
        driver = FakeDriver(V1, target="web")
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
        assert driver.restored == []

    async def test_a_container_gone_for_good_counts_again(self, store: Store) -> None:
        """After the grace period, failures of a vanished container are judged again."""
        driver = FakeDriver(V1, target="web")
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


class TestPolicyCarriedOut:
    async def test_a_breach_rolls_back_and_quarantines(self, store: Store) -> None:
        driver = FakeDriver(V1, target="web")
        target = controller(store, driver, ROLLBACK_ONLY)
        await known_good(target)
        driver.running = V2
        await target.observe_release(30.0)
        await fail(target, 31.0)
        assert target.playbook_task is not None
        await target.playbook_task
        assert driver.restored == [V1]
        assert target.machine.state is TargetState.ROLLED_BACK
        assert store.is_quarantined("web", V2.image)

    async def test_the_restored_release_breaching_freezes_and_tells(self, store: Store) -> None:
        driver, told = FakeDriver(V1, target="web"), Told()
        target = controller(store, driver, ROLLBACK_ONLY, told=told)
        await known_good(target)
        driver.running = V2
        await target.observe_release(30.0)
        await fail(target, 31.0)
        assert target.playbook_task is not None
        await target.playbook_task
        await fail(target, 40.0)
        assert target.machine.state is TargetState.FROZEN
        assert driver.restored == [V1]  # no second rollback: it would only loop
        assert "restored release breaches as well" in told.messages[0][1]

    async def test_a_failed_playbook_freezes_and_tells(self, store: Store) -> None:
        driver, told = FakeDriver(V1, target="web"), Told()
        once = ROLLBACK_ONLY.replace("- rollback: {}", "- {rollback: {}, retries: 0}")
        target = controller(store, driver, once, told=told)
        await known_good(target)
        driver.running, driver.restore_failures = V2, 1
        await target.observe_release(30.0)
        await fail(target, 31.0)
        assert target.playbook_task is not None
        await target.playbook_task
        assert target.machine.state is TargetState.FROZEN
        assert "failed; frozen" in told.messages[0][1]

    async def test_cooldown_refuses_an_alert_but_not_an_operator(self, store: Store) -> None:
        clock = FakeClock()
        driver = FakeDriver(V1, target="web")
        target = controller(store, driver, ROLLBACK_ONLY, clock=clock)
        await known_good(target)
        driver.running = V2
        await target.observe_release(30.0)
        await fail(target, 31.0)
        assert target.playbook_task is not None
        await target.playbook_task
        clock.now = 40.0  # the rollback was 6 s ago; cooldown is 1 min
        alert = Trigger(TriggerKind.ALERT, "HighErrors", "alert HighErrors firing")
        with pytest.raises(ControlRefused, match="cooldown"):
            await target.request(alert)
        # An operator passes the cooldown; only the lack of another known-good release stops it.
        manual = Trigger(TriggerKind.MANUAL, "operator", "test")
        with pytest.raises(ControlRefused, match="no known-good release"):
            await target.request(manual)

    async def test_freeze_then_unfreeze_bakes_again(self, store: Store) -> None:
        clock = FakeClock()
        target = controller(store, FakeDriver(V1, target="web"), clock=clock)
        await known_good(target)
        target.freeze("maintenance")
        await fail(target, 30.0)
        assert target.machine.state is TargetState.FROZEN
        clock.now = 50.0
        target.unfreeze()
        assert target.machine.state is TargetState.BAKING
        assert target.recorders["api"].samples_since_reset == 0  # the failures are forgotten
        assert target.machine.since == 50.0

    async def test_dry_run_notes_the_breach_and_changes_nothing(self, store: Store) -> None:
        driver = FakeDriver(V1, target="web")
        text = ROLLBACK_ONLY.replace("cooldown: 1m}", "cooldown: 1m, dry_run: true}")
        target = controller(store, driver, text)
        await known_good(target)
        driver.running = V2
        await target.observe_release(30.0)
        await fail(target, 31.0)
        assert target.machine.state is TargetState.BREACHED
        assert target.playbook_task is None
        assert driver.restored == []
        assert "dry_run" in [event.kind for event in store.events(target="web")]

    async def test_a_quarantined_release_coming_back_is_rolled_back(self, store: Store) -> None:
        driver = FakeDriver(V1, target="web")
        target = controller(store, driver, ROLLBACK_ONLY)
        await known_good(target)
        store.quarantine("web", V2.image, "rolled back before")
        driver.running = V2
        await target.observe_release(30.0)
        assert target.playbook_task is not None
        await target.playbook_task
        assert driver.restored == [V1]
        assert target.machine.state is TargetState.ROLLED_BACK


class TestAlertBeforePoll:
    async def test_an_alert_names_the_release_that_runs_now(self, store: Store) -> None:
        """An alert that arrives before the poll has seen a deploy blames the new release and
        puts back the newest known-good one, not the one before it (found by the soak)."""
        driver = FakeDriver(V1, target="web")
        target = controller(store, driver, ROLLBACK_ONLY)
        for at, release in ((0.0, V1), (30.0, V2)):
            driver.running = release
            await target.observe_release(at)
            target.recorders["api"].probe(at + 1, ok=True, latency=0.01)
            await target.tick(at + 20)
            assert target.machine.state is TargetState.HEALTHY
        v3 = Release("web", "sha256:v3", "cfg", "app:v3")
        driver.running = v3  # deployed; no poll since
        await target.request(Trigger(TriggerKind.ALERT, "SoakBad", "firing"))
        task = target.playbook_task
        assert task is not None
        await task
        incident = store.incidents("web")[0]
        assert incident.bad_release is not None
        assert incident.bad_release.image == v3.image
        assert driver.restored == [V2]
        assert [q.image for q in store.quarantined("web")] == [v3.image]


class FlakyEngineDriver(FakeDriver):
    """Raises TargetError while ``away``, as the container driver does without an engine."""

    away = False

    async def current(self) -> Release | None:
        if self.away:
            raise TargetError("list containers: connection refused")
        return self.running


async def poll(target: TargetController, clock: FakeClock, at: float) -> None:
    """The release poll at ``at`` (the clock too: presence reads it after the driver's call)."""
    clock.now = at
    await target.observe_release(at)


class TestEngineAway:
    async def test_failures_while_the_engine_is_away_are_not_blamed(self, store: Store) -> None:
        """The engine stopping stops the app: its probes fail, but no release is blamed and no
        rollback (that could not be done) starts; once the engine answers, judging resumes
        on fresh windows (found by the soak)."""
        driver, clock = FlakyEngineDriver(V1), FakeClock()
        target = controller(store, driver, clock=clock)
        await target.observe_release(0.0)
        target.recorders["api"].probe(1.0, ok=True, latency=0.01)
        await target.tick(20.0)
        assert target.machine.state is TargetState.HEALTHY
        driver.away = True
        await poll(target, clock, 21.0)
        for second in range(22, 40):
            target.recorders["api"].probe(float(second), ok=False, latency=None)
            await target.tick(float(second))
        assert target.machine.state is TargetState.HEALTHY
        assert store.incidents("web") == []
        driver.away = False
        await poll(target, clock, 40.0)
        assert target.recorders["api"].stats(40.0).count == 0
        await poll(target, clock, 40.0 + RESTART_GRACE)  # the restart's grace is over
        back = 41.0 + RESTART_GRACE
        for second in range(4):
            target.recorders["api"].probe(back + second, ok=False, latency=None)
        await target.tick(back + 4)
        assert target.machine.state is TargetState.BREACHED  # judged again once reachable

    async def test_the_apps_restart_after_the_engine_is_back_is_not_blamed(
        self, store: Store
    ) -> None:
        """The engine answers again before the containers it restarted serve: their failures
        in ``RESTART_GRACE`` belong to the outage, and are gone from the windows after it (the
        soak rolled a good release back 1.8 s after the engine was back)."""
        driver, clock = FlakyEngineDriver(V1), FakeClock()
        target = controller(store, driver, clock=clock)
        await known_good(target)
        driver.away = True
        await poll(target, clock, 30.0)
        driver.away = False
        await poll(target, clock, 35.0)
        for second in range(36, 39):  # connection refused while the app starts
            target.recorders["api"].probe(float(second), ok=False, latency=None)
            await target.tick(float(second))
        for second in range(39, 45):  # it serves
            target.recorders["api"].probe(float(second), ok=True, latency=0.01)
            await target.tick(float(second))
        await poll(target, clock, 35.0 + RESTART_GRACE)
        target.recorders["api"].probe(36.0 + RESTART_GRACE, ok=True, latency=0.01)
        await target.tick(37.0 + RESTART_GRACE)
        assert store.incidents("web") == []
        assert target.machine.state is TargetState.HEALTHY
        assert target.recorders["api"].stats(37.0 + RESTART_GRACE).errors == 0

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


def started(at: str, by_policy: int = 0, container: str = "c1") -> Starts:
    return Starts(frozenset({(container, at)}), by_policy)


async def two_good_releases(store: Store) -> tuple[FakeDriver, FakeClock, TargetController]:
    """V1, then V2, both known-good by t=50 (a breach of V2 has V1 to go back to); V2's
    container started at "t0"."""
    driver, clock = FakeDriver(V1, target="web"), FakeClock()
    driver.started = started("t0")
    target = controller(store, driver, ROLLBACK_ONLY, clock=clock)
    await known_good(target)
    driver.running = V2
    await known_good(target, at=30.0)
    return driver, clock, target


async def restored(target: TargetController, driver: FakeDriver) -> list[Release]:
    """What the playbook the last tick started restored."""
    assert target.playbook_task is not None
    await target.playbook_task
    return driver.restored


class TestStartedAgain:
    """A ``docker restart`` of a good release: its container is down for a moment, the same
    release comes back. Somebody's start gets the engine restart's grace; a start by the
    restart policy (a crash) does not."""

    async def test_a_restart_by_somebody_is_not_blamed(self, store: Store) -> None:
        driver, clock, target = await two_good_releases(store)
        for second in range(55, 57):  # stopping: refused
            target.recorders["api"].probe(float(second), ok=False, latency=None)
        driver.started = started("t57")  # `docker restart`: the start event's look
        await poll(target, clock, 57.0)
        for second in range(57, 61):  # booting: refused
            target.recorders["api"].probe(float(second), ok=False, latency=None)
            await target.tick(float(second))
        for second in range(61, 70):
            target.recorders["api"].probe(float(second), ok=True, latency=0.01)
            await target.tick(float(second))
        await poll(target, clock, 57.0 + RESTART_GRACE)
        await target.tick(58.0 + RESTART_GRACE)
        assert store.incidents("web") == []
        assert driver.restored == []
        assert target.machine.state is TargetState.HEALTHY
        assert target.recorders["api"].stats(58.0 + RESTART_GRACE).errors == 0

    async def test_a_crash_the_restart_policy_answered_is_rolled_back(self, store: Store) -> None:
        driver, clock, target = await two_good_releases(store)
        driver.started = started("t56", by_policy=1)
        await poll(target, clock, 56.0)
        clock.now = 60.0
        await fail(target, 57.0, count=3)
        assert await restored(target, driver) == [V1]

    async def test_a_look_between_the_policys_count_and_its_start_changes_nothing(
        self, store: Store
    ) -> None:
        """The engine raises ``RestartCount`` when the container exits and starts it after the
        restart delay: a look in between sees the count grown and the old start. The crash
        loop is still judged (the soak caught its detection delayed by the grace)."""
        driver, clock, target = await two_good_releases(store)
        driver.started = started("t0", by_policy=1)  # exited, restart pending
        await poll(target, clock, 56.0)
        driver.started = started("t56", by_policy=1)  # started by the policy
        await poll(target, clock, 56.5)
        clock.now = 60.0
        await fail(target, 57.0, count=3)
        assert await restored(target, driver) == [V1]

    async def test_a_deploys_create_then_start_is_judged_at_once(self, store: Store) -> None:
        """``docker run`` of a new release: the create event's look sees a container never
        started, the start event's look its first start. No grace: a bad release is caught
        as fast as before."""
        driver, clock, target = await two_good_releases(store)
        driver.running = Release("web", "sha256:v3", "cfg", "app:v3")
        driver.started = started(NEVER_STARTED, container="c2")
        await poll(target, clock, 55.0)
        driver.started = started("t55", container="c2")
        await poll(target, clock, 55.5)
        clock.now = 59.0
        await fail(target, 56.0, count=3)
        assert await restored(target, driver) == [V2]

    async def test_a_restart_long_ago_does_not_excuse_a_failure_now(self, store: Store) -> None:
        driver, clock, target = await two_good_releases(store)
        driver.started = started("t55")
        await poll(target, clock, 55.0)
        await poll(target, clock, 55.0 + RESTART_GRACE)  # the grace is over
        clock.now = 70.0
        await fail(target, 67.0, count=3)
        assert await restored(target, driver) == [V1]


def stopped_by_somebody(at: str = "t0", container: str = "c1") -> Starts:
    """The container exited after its start at ``at``, and the engine says somebody asked."""
    return Starts(frozenset({(container, at)}), 0, held=frozenset({container}))


class TestHeldBySomebody:
    """``docker stop`` (or ``kill``, ``pause``) of a good release: Docker's restart policies
    leave such a container alone, and so does watchdogd: it is not judged until it runs
    again, and restoring the previous release would overrule the operator."""

    async def test_a_stopped_release_is_not_rolled_back(self, store: Store) -> None:
        driver, clock, target = await two_good_releases(store)
        driver.started = stopped_by_somebody()
        await poll(target, clock, 55.0)
        clock.now = 200.0
        for at in (56.0, 80.0, 120.0):  # long after any grace: still somebody's stop
            await fail(target, at, count=5)
        assert target.playbook_task is None
        assert store.incidents("web") == []
        assert target.machine.state is TargetState.HEALTHY
        held = [e for e in store.events(target="web") if e.kind == "held_by_somebody"]
        assert len(held) == 1

    async def test_an_alert_about_a_stopped_release_is_refused(self, store: Store) -> None:
        driver, clock, target = await two_good_releases(store)
        driver.started = stopped_by_somebody()
        clock.now = 60.0
        alert = Trigger(TriggerKind.ALERT, "Down", "alert Down firing")
        with pytest.raises(ControlRefused, match="stopped or paused by somebody"):
            await target.request(alert)
        assert store.incidents("web") == []

    async def test_an_operators_rollback_still_runs(self, store: Store) -> None:
        driver, clock, target = await two_good_releases(store)
        driver.started = stopped_by_somebody()
        clock.now = 60.0
        await target.request(Trigger(TriggerKind.MANUAL, "operator", "back to v1"))
        assert await restored(target, driver) == [V1]

    async def test_started_again_it_is_judged_after_the_grace(self, store: Store) -> None:
        """``docker start`` after the stop: the restart's grace, then judged as before."""
        driver, clock, target = await two_good_releases(store)
        driver.started = stopped_by_somebody("t0")
        await poll(target, clock, 55.0)
        driver.started = started("t60")
        await poll(target, clock, 60.0)
        await poll(target, clock, 60.0 + RESTART_GRACE)
        clock.now = 80.0
        await fail(target, 75.0, count=3)
        assert await restored(target, driver) == [V1]

    async def test_a_crash_without_a_stop_is_rolled_back(self, store: Store) -> None:
        """Exited with no stop on request (the engine's events have none): the release
        failed."""
        driver, clock, target = await two_good_releases(store)
        await poll(target, clock, 55.0)
        clock.now = 60.0
        await fail(target, 56.0, count=3)
        assert await restored(target, driver) == [V1]


@pytest.mark.parametrize(
    "hand",
    [started("t56"), stopped_by_somebody()],
    ids=["docker restart", "docker stop"],
)
async def test_a_breach_before_the_poll_saw_somebodys_hand_asks_first(
    store: Store, hand: Starts
) -> None:
    """The probes' breach comes before any poll saw the restart or the stop: the breach asks
    the driver first, as after an engine restart, and starts nothing."""
    driver, clock, target = await two_good_releases(store)
    driver.started = hand  # no poll since
    clock.now = 60.0
    await fail(target, 55.0, count=5)
    assert target.playbook_task is None
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
        target = warm_controller(store, FakeDriver(V1, target="web"))
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
        target = warm_controller(store, FakeDriver(V1, target="web"))
        await target.observe_release(0.0)
        for at in (1.0, 1.5, 2.0, 2.5):
            target.recorders["api"].probe(at, ok=False, latency=None)
        await target.tick(3.0)
        assert target.machine.state is TargetState.BREACHED
