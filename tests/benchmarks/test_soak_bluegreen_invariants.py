"""The soak's blue-green invariants (benchmarks/soak_bluegreen_invariants.py) on hand-made
histories."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.support.scripts import benchmark_modules


@pytest.fixture(scope="module")
def bg() -> Iterator[ModuleType]:
    """The module, with the module it builds on."""
    with benchmark_modules("soak_invariants", "soak_bluegreen_invariants") as module:
        yield module


def verdict(verdicts: list[Any], start: str) -> Any:
    return next(v for v in verdicts if v.name.startswith(start))


def clean(bg: ModuleType) -> tuple[list[Any], list[Any], Any]:
    """A good release promoted, one caught by its pre-checks, one broken in its bake and
    switched back; two containers only while a deploy was open."""
    attempts = [
        bg.BgAttempt(100.0, "good-1", "good"),
        bg.BgAttempt(200.0, "bad-500s-2", "pre-check"),
        bg.BgAttempt(310.0, "bad-fails-3", "traffic"),
    ]
    observed = bg.BgObserved(
        deploys=[
            bg.BgDeploy("good-1", "promoted", 100.5, 130.0),
            bg.BgDeploy("bad-500s-2", "aborted", 200.5, 205.0, "pre-checks failed"),
            bg.BgDeploy("bad-fails-3", "rolled_back", 300.5, 315.0, "green breached"),
        ],
        pairs=[
            bg.PairSample(110.0, ("app", "app-green-1"), True),
            bg.PairSample(131.0, ("app",), False),
            bg.PairSample(312.0, ("app", "app-green-2"), True),
        ],
        served=Counter({"good-0": 100, "good-1": 80, "bad-fails-3": 30}),
        left=["app"],
        broken={"bad-fails-3"},
    )
    return attempts, [], observed


class TestBlueGreenInvariants:
    def test_a_clean_run_has_no_violation(self, bg: ModuleType) -> None:
        verdicts = bg.check_bluegreen(*clean(bg))
        assert [v.violations for v in verdicts if not v.ok] == []
        assert [v.checked for v in verdicts] == [2, 1, 3]

    def test_a_promoted_bad_release_is_a_violation(self, bg: ModuleType) -> None:
        attempts, outages, observed = clean(bg)
        observed.deploys[2] = bg.BgDeploy("bad-fails-3", "promoted", 300.5, 330.0)
        violations = verdict(bg.check_bluegreen(attempts, outages, observed), "blue-green: no bad")
        assert violations.violations == (
            "bad-fails-3 (traffic) was promoted",
            "bad-fails-3 broke in its bake and ended promoted: ",
        )

    def test_users_on_a_release_its_pre_checks_must_stop(self, bg: ModuleType) -> None:
        attempts, outages, observed = clean(bg)
        observed.served["bad-500s-2"] = 3
        (violation,) = verdict(
            bg.check_bluegreen(attempts, outages, observed), "blue-green: no bad"
        ).violations
        assert violation.startswith("bad-500s-2 served 3 user requests")

    def test_a_bake_cut_short_by_a_crash_is_fine_only_with_a_crash(self, bg: ModuleType) -> None:
        attempts, _, observed = clean(bg)
        observed.deploys[0] = bg.BgDeploy("good-1", "aborted", 100.5, 130.0)
        observed.deploys[2] = bg.BgDeploy("bad-fails-3", "aborted", 300.5, 315.0)
        inv = sys.modules["soak_invariants"]
        haproxy = [inv.Outage(110.0, 111.0, "haproxy"), inv.Outage(311.0, 312.0, "haproxy")]
        assert not verdict(bg.check_bluegreen(attempts, haproxy, observed), "blue-green: good").ok
        assert not verdict(bg.check_bluegreen(attempts, haproxy, observed), "blue-green: no").ok
        crashes = [inv.Outage(110.0, 112.0, "daemon"), inv.Outage(311.0, 313.0, "daemon")]
        verdicts = bg.check_bluegreen(attempts, crashes, observed)
        assert [v.violations for v in verdicts if not v.ok] == []
        assert verdict(verdicts, "blue-green: good").note == "1 cut short by a restart"

    def test_two_releases_with_no_deploy_open(self, bg: ModuleType) -> None:
        attempts, outages, observed = clean(bg)
        observed.pairs += [
            bg.PairSample(400.0, ("app", "app-green-3"), False),
            bg.PairSample(405.0, ("app", "app-green-3"), False),
        ]
        assert verdict(bg.check_bluegreen(attempts, outages, observed), "blue-green: two").ok
        observed.pairs.append(bg.PairSample(411.0, ("app", "app-green-3"), False))
        observed.left = ["app", "app-green-3"]
        (longer, end) = verdict(
            bg.check_bluegreen(attempts, outages, observed), "blue-green: two"
        ).violations
        assert longer == "app, app-green-3 running with no open deploy for 11 s"
        assert end == "at the end the app's containers are ['app', 'app-green-3']"
