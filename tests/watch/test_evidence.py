"""``wait_healthy``'s judge: only evidence gathered after the restore counts."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.support.fakes import FakeDriver
from watchdogd.watch.evidence import RestoreEvidence
from watchdogd.watch.recorder import CheckRecorder


def Runtime(health: bool | None = None) -> FakeDriver:  # noqa: N802 - reads as a type
    """A driver whose runtime health the test sets (None: no HEALTHCHECK)."""
    driver = FakeDriver(None, target="web")
    driver.health = health
    return driver


def judge(
    runtime: FakeDriver, checks: dict[str, str], gated: Sequence[str]
) -> tuple[RestoreEvidence, dict[str, CheckRecorder]]:
    recorders = {name: CheckRecorder("web", name, kind, 60.0) for name, kind in checks.items()}
    evidence = RestoreEvidence(runtime)
    evidence.use(recorders, gated)
    return evidence, recorders


RESTORE = 100.0  # when wait_healthy started, after the restore


class TestFreshEvidence:
    async def test_samples_before_the_restore_say_nothing(self) -> None:
        """The reported bug: the bad release's last sample was ok, no probe ran since."""
        evidence, recorders = judge(Runtime(), {"api": "http"}, ["api"])
        recorders["api"].probe(99.0, ok=True, latency=0.01)
        assert await evidence(RESTORE, 1) is None

    async def test_a_fresh_ok_sample_is_healthy(self) -> None:
        evidence, recorders = judge(Runtime(), {"api": "http"}, ["api"])
        recorders["api"].probe(99.0, ok=False, latency=None)
        recorders["api"].probe(100.5, ok=True, latency=0.01)
        assert await evidence(RESTORE, 1) is True

    async def test_a_fresh_failure_is_unhealthy(self) -> None:
        evidence, recorders = judge(Runtime(), {"api": "http"}, ["api"])
        recorders["api"].probe(100.5, ok=False, latency=None)
        assert await evidence(RESTORE, 1) is False

    async def test_min_samples_are_needed_from_each_gated_probe(self) -> None:
        checks = {"api": "http", "login": "auth_flow", "p95": "promql"}
        evidence, recorders = judge(Runtime(), checks, ["api", "login", "p95"])
        recorders["api"].probe(101.0, ok=True, latency=0.01)
        recorders["api"].probe(102.0, ok=True, latency=0.01)
        recorders["login"].probe(101.0, ok=True, latency=0.01)
        assert await evidence(RESTORE, 2) is None  # login has one of two
        recorders["login"].probe(102.0, ok=True, latency=0.01)
        assert await evidence(RESTORE, 2) is True  # promql is not a probe of the release

    async def test_an_ungated_probe_does_not_hold_up_a_gated_one(self) -> None:
        evidence, recorders = judge(Runtime(), {"api": "http", "extra": "http"}, ["api"])
        recorders["api"].probe(101.0, ok=True, latency=0.01)
        assert await evidence(RESTORE, 1) is True

    async def test_without_probes_gated_checks_need_fresh_data(self) -> None:
        evidence, recorders = judge(Runtime(), {"traffic": "scrape"}, ["traffic"])
        recorders["traffic"].counts(99.0, 10, 0)
        assert await evidence(RESTORE, 1) is None
        recorders["traffic"].counts(101.0, 10, 0)
        assert await evidence(RESTORE, 1) is True


class TestRuntimeHealth:
    async def test_an_unhealthy_container_fails_whatever_the_probes_say(self) -> None:
        evidence, recorders = judge(Runtime(False), {"api": "http"}, ["api"])
        recorders["api"].probe(101.0, ok=True, latency=0.01)
        assert await evidence(RESTORE, 1) is False

    async def test_an_engine_that_cannot_answer_is_no_opinion(self) -> None:
        runtime = Runtime(True)
        runtime.health_unknown = True
        evidence, recorders = judge(runtime, {"api": "http"}, ["api"])
        recorders["api"].probe(101.0, ok=True, latency=0.01)
        assert await evidence(RESTORE, 1) is None

    @pytest.mark.parametrize(("health", "verdict"), [(True, True), (None, None)])
    async def test_no_checks_at_all_leaves_the_runtime(
        self, health: bool | None, verdict: bool | None
    ) -> None:
        evidence, _ = judge(Runtime(health), {}, [])
        assert await evidence(RESTORE, 1) is verdict
