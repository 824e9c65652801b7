"""The soak's invariant checker (benchmarks/soak_invariants.py) on hand-made histories."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.support.scripts import benchmark_modules


@pytest.fixture(scope="module")
def inv() -> Iterator[ModuleType]:
    with benchmark_modules("soak_invariants") as module:
        yield module


def verdict(verdicts: list[Any], name: str) -> Any:
    return next(v for v in verdicts if v.name == name)


def clean(inv: ModuleType) -> tuple[Any, Any]:
    """A good deploy that bakes, a bad one rolled back in 3 s and restored 2 s later."""
    history = inv.History(
        deploys=[
            inv.Deploy(100.0, "ctr", "good-1", bad=False),
            inv.Deploy(200.0, "ctr", "bad-500s-2", bad=True),
        ]
    )
    observed = inv.Observed(
        incidents=[inv.Incident("i1", "ctr", "gate", "succeeded", 203.0, 205.0)],
        journal=[
            inv.JournalRow("i1", 0, "command", 1, "succeeded"),
            inv.JournalRow("i1", 1, "rollback", 1, "succeeded"),
        ],
        command_log=["i1"],
        audit_ends={"i1"},
        running={"ctr": "good-1"},
        believed={"ctr": "good-1"},
        last_restore={"ctr": (203.0, "good-1")},
    )
    return history, observed


class TestSoakInvariants:
    def test_a_clean_run_has_no_violation(self, inv: ModuleType) -> None:
        verdicts, timings = inv.check(*clean(inv))
        assert [v.violations for v in verdicts if not v.ok] == []
        assert [(t.label, t.detect, t.restore) for t in timings] == [("bad-500s-2", 3.0, 5.0)]

    def test_a_bad_release_never_rolled_back_is_a_violation(self, inv: ModuleType) -> None:
        history, observed = clean(inv)
        observed.incidents = []
        verdicts, _ = inv.check(history, observed)
        (violation,) = verdict(verdicts, "bad releases rolled back in time").violations
        assert "bad-500s-2 on ctr never rolled back" in violation

    def test_late_detection_is_a_violation_unless_the_daemon_was_away(
        self, inv: ModuleType
    ) -> None:
        history, observed = clean(inv)
        observed.incidents = [inv.Incident("i1", "ctr", "gate", "succeeded", 230.0, 232.0)]
        observed.last_restore = {"ctr": (230.0, "good-1")}
        verdicts, _ = inv.check(history, observed)
        assert not verdict(verdicts, "bad releases rolled back in time").ok
        history.outages = [inv.Outage(205.0, 220.0, "daemon")]
        verdicts, _ = inv.check(history, observed)
        assert verdict(verdicts, "bad releases rolled back in time").ok

    def test_an_automatic_rollback_of_a_good_release_is_a_violation(self, inv: ModuleType) -> None:
        history, observed = clean(inv)
        observed.incidents.append(inv.Incident("i0", "ctr", "alert", "succeeded", 150.0, 151.0))
        observed.audit_ends.add("i0")
        observed.journal.append(inv.JournalRow("i0", 1, "rollback", 1, "succeeded"))
        verdicts, _ = inv.check(history, observed)
        (violation,) = verdict(verdicts, "no good release rolled back").violations
        assert "i0 (alert) rolled back good good-1" in violation

    def test_an_operator_rollback_of_a_good_release_is_not(self, inv: ModuleType) -> None:
        history, observed = clean(inv)
        observed.incidents.append(inv.Incident("i0", "ctr", "manual", "succeeded", 150.0, 151.0))
        observed.audit_ends.add("i0")
        observed.journal.append(inv.JournalRow("i0", 1, "rollback", 1, "succeeded"))
        verdicts, _ = inv.check(history, observed)
        assert verdict(verdicts, "no good release rolled back").ok

    def test_a_non_idempotent_step_run_twice_is_a_violation(self, inv: ModuleType) -> None:
        history, observed = clean(inv)
        observed.command_log = ["i1", "i1"]
        observed.journal[0] = inv.JournalRow("i1", 0, "command", 2, "succeeded")
        verdicts, _ = inv.check(history, observed)
        assert len(verdict(verdicts, "no non-idempotent step ran twice").violations) == 2

    def test_a_retried_idempotent_step_is_fine(self, inv: ModuleType) -> None:
        history, observed = clean(inv)
        observed.journal[1] = inv.JournalRow("i1", 1, "rollback", 3, "succeeded")
        verdicts, _ = inv.check(history, observed)
        assert verdict(verdicts, "no non-idempotent step ran twice").ok

    def test_a_running_incident_is_stuck(self, inv: ModuleType) -> None:
        history, observed = clean(inv)
        observed.incidents = [inv.Incident("i1", "ctr", "gate", "running", 203.0, None)]
        verdicts, _ = inv.check(history, observed)
        assert verdict(verdicts, "every incident ends").violations == ("i1 on ctr is running",)

    def test_disagreements_between_engine_api_and_journal(self, inv: ModuleType) -> None:
        history, observed = clean(inv)
        observed.running = {"ctr": "bad-500s-2"}
        observed.audit_ends = set()
        verdicts, _ = inv.check(history, observed)
        found = verdict(verdicts, "journal, audit log and engine agree").violations
        assert any("watchdogd believes good-1" in v for v in found)
        assert any("last rollback restored good-1" in v for v in found)
        assert any("not in the audit log" in v for v in found)

    def test_a_deploy_after_the_last_rollback_wins_over_the_journal(self, inv: ModuleType) -> None:
        history, observed = clean(inv)
        history.deploys.append(inv.Deploy(300.0, "ctr", "good-3", bad=False))
        observed.running = observed.believed = {"ctr": "good-3"}
        verdicts, _ = inv.check(history, observed)
        assert verdict(verdicts, "journal, audit log and engine agree").ok

    def test_leaks_are_violations(self, inv: ModuleType) -> None:
        history, observed = clean(inv)
        observed.leaks = ["volume abc"]
        verdicts, _ = inv.check(history, observed)
        assert verdict(verdicts, "nothing of watchdogd's leaked").violations == ("volume abc",)

    def test_memory_growth_over_a_long_run_is_a_violation(self, inv: ModuleType) -> None:
        history, observed = clean(inv)
        mb = 1024 * 1024
        observed.samples = [inv.Sample(t * 10.0, 7, 50 * mb + t * mb, 20) for t in range(100)]
        observed.samples += [inv.Sample(t * 10.0, 8, 50 * mb, 20) for t in range(10)]
        verdicts, _ = inv.check(history, observed)
        rss = verdict(verdicts, "daemon rss flat")
        assert not rss.ok
        assert "+360.00 MB/h" in rss.note
        assert verdict(verdicts, "daemon fds flat").ok

    def test_open_files_refilling_to_their_old_mark_are_flat(self, inv: ModuleType) -> None:
        """An engine restart empties the Docker pools mid-span; they refill to the old mark
        (both soak runs of 2026-12-01: 68 fds, down to 44, back to 68)."""
        history, observed = clean(inv)
        fds = [68] * 40 + [44 + t for t in range(24)] + [68] * 40
        observed.samples = [inv.Sample(t * 10.0, 7, 50, n) for t, n in enumerate(fds)]
        verdicts, _ = inv.check(history, observed)
        found = verdict(verdicts, "daemon fds flat")
        assert found.ok, found
        assert "slope +" in found.note  # the slope alone would have said it grew

    def test_open_files_leaking_are_a_violation(self, inv: ModuleType) -> None:
        """One more open file a minute: the mark rises as much as the slope says."""
        history, observed = clean(inv)
        observed.samples = [inv.Sample(t * 10.0, 7, 50, 30 + t // 6) for t in range(100)]
        verdicts, _ = inv.check(history, observed)
        found = verdict(verdicts, "daemon fds flat")
        assert not found.ok
        assert "high-water mark rose 12 fds" in found.violations[0]

    def test_a_short_run_reports_the_slope_without_judging(self, inv: ModuleType) -> None:
        history, observed = clean(inv)
        observed.samples = [inv.Sample(t * 2.0, 7, t * 1024 * 1024, 20) for t in range(30)]
        verdicts, _ = inv.check(history, observed)
        rss = verdict(verdicts, "daemon rss flat")
        assert rss.ok
        assert "too short to judge" in rss.note

    def test_the_slope_follows_the_longest_lived_process(self, inv: ModuleType) -> None:
        samples = [inv.Sample(float(t * 10), 1, 100, 5) for t in range(10)]
        samples += [inv.Sample(float(t * 10), 2, 10 * t, 5) for t in range(10, 100)]
        kept = inv.steady_samples(samples)
        assert {s.pid for s in kept} == {2}
        assert kept[0].at == 100.0 + inv.WARM_UP
        assert inv.slope([(s.at, float(s.rss)) for s in kept]) == pytest.approx(1.0)

    def test_downtime_merges_overlapping_outages(self, inv: ModuleType) -> None:
        outages = [inv.Outage(0.0, 10.0, "daemon"), inv.Outage(5.0, 15.0, "engine")]
        assert inv.downtime(outages, 2.0, 12.0) == pytest.approx(10.0)
        assert inv.downtime(outages, 20.0, 30.0) == 0.0

    def test_the_table_has_one_row_per_invariant(self, inv: ModuleType) -> None:
        verdicts, _ = inv.check(*clean(inv))
        lines = inv.table(verdicts).splitlines()
        assert len(lines) == 2 + len(verdicts)
        assert lines[0].startswith("invariant")
