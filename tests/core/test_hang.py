"""Hang evidence: a service that accepts connections and answers nothing (``gates``, rule 4).

A probe sent after the newest successful answer and still waiting past the check's smallest
latency threshold stands in for the last failure of a hard-down run. Plain values, the real
``Window`` and ``Gate``.
"""

from __future__ import annotations

from watchdogd.core.gates import Gate, GateMetric, GateSpec, Verdict
from watchdogd.core.window import Window

FAILURES = GateSpec(name="api:failure_rate", metric=GateMetric.FAILURE_RATE, above=0.01)


def healthy_then_hung(thresholds: tuple[float, ...] = (2.0,)) -> Window:
    """Five minutes of 50 ms answers, one probe a second (sent at 0..299); then probes sent at
    300 and 301 time out after 3 s (failures at 303 and 304, latency 3 s)."""
    window = Window(thresholds=thresholds)
    for t in range(300):
        window.add(t + 0.05, ok=True, latency=0.05)
    window.add(303.0, ok=False, latency=3.0)
    window.add(304.0, ok=False, latency=3.0)
    return window


class TestWindowKeepsHangEvidence:
    def test_run_sent_at_is_the_first_failed_probe_sending(self) -> None:
        stats = healthy_then_hung().stats(304.0)
        assert stats.consecutive_failures == 2
        assert stats.run_started_at == 303.0
        assert stats.run_sent_at == 300.0

    def test_waiting_probe_past_the_threshold_sent_after_the_last_answer(self) -> None:
        # Sent at 302 and 303: at 304.5 the first has waited 2.5 s, the second 1.5 s.
        stats = healthy_then_hung().stats(304.5, in_flight=(302.0, 303.0))
        assert stats.unanswered == 1
        assert stats.unanswered_passed_at == 304.0

    def test_a_probe_sent_before_the_newest_answer_is_not_evidence(self) -> None:
        window = healthy_then_hung()
        window.add(303.9, ok=True, latency=0.1)  # sent at 303.8, answered: not a hang
        stats = window.stats(304.5, in_flight=(302.0,))
        assert stats.unanswered == 0
        assert stats.unanswered_passed_at is None

    def test_without_a_latency_threshold_there_is_no_evidence(self) -> None:
        stats = healthy_then_hung(thresholds=()).stats(304.5, in_flight=(302.0,))
        assert stats.unanswered == 0


class TestGateCatchesAHang:
    def test_two_timeouts_and_a_probe_waiting_past_the_threshold_breach(self) -> None:
        stats = healthy_then_hung().stats(304.001, in_flight=(302.0, 303.0, 303.5))
        result = Gate(FAILURES).evaluate(stats, 304.001)
        assert result.verdict is Verdict.BREACHED
        assert "2 consecutive failures and 1 probe(s) waiting past 2 s" in result.reason
        assert "nothing answered over 4 s (hard down: a hang)" in result.reason

    def test_one_timeout_is_not_enough(self) -> None:
        window = Window(thresholds=(2.0,))
        for t in range(300):
            window.add(t + 0.05, ok=True, latency=0.05)
        window.add(303.0, ok=False, latency=3.0)
        stats = window.stats(303.5, in_flight=(301.0, 302.0, 303.0))
        assert stats.unanswered == 1
        assert Gate(FAILURES).evaluate(stats, 303.5).verdict is Verdict.OK

    def test_waiting_probes_without_a_failure_are_not_hard_down(self) -> None:
        """A heavy tail: slow probes, but no probe has failed."""
        window = Window(thresholds=(2.0,))
        for t in range(300):
            window.add(t + 0.05, ok=True, latency=0.05)
        stats = window.stats(305.0, in_flight=(300.0, 301.0, 302.0))
        assert stats.unanswered == 3
        assert Gate(FAILURES).evaluate(stats, 305.0).verdict is Verdict.OK

    def test_an_answer_in_between_ends_the_hang(self) -> None:
        window = healthy_then_hung()
        window.add(304.0005, ok=True, latency=0.2)  # a probe sent at 303.8 answered
        stats = window.stats(304.001, in_flight=(302.0,))
        assert Gate(FAILURES).evaluate(stats, 304.001).verdict is Verdict.OK

    def test_the_hang_path_is_off_with_consecutive_failures_zero(self) -> None:
        spec = GateSpec(
            name="api:failure_rate",
            metric=GateMetric.FAILURE_RATE,
            above=0.01,
            consecutive_failures=0,
        )
        stats = healthy_then_hung().stats(304.001, in_flight=(302.0,))
        assert Gate(spec).evaluate(stats, 304.001).verdict is Verdict.OK

    def test_answered_failures_are_not_a_hang(self) -> None:
        """Quick 503s are answers: only hard down with failures alone can catch them."""
        window = Window(thresholds=(2.0,))
        for t in range(300):
            window.add(t + 0.05, ok=True, latency=0.05)
        window.add(300.05, ok=False, latency=0.05)
        window.add(300.55, ok=False, latency=0.05)
        stats = window.stats(303.5, in_flight=(301.0,))
        assert stats.consecutive_failures == 2
        assert stats.unanswered == 1
        assert not stats.run_silent
        assert Gate(FAILURES).evaluate(stats, 303.5).verdict is Verdict.OK

    def test_refused_connections_are_silent(self) -> None:
        """A connection that breaks without an answer reports no latency: silent."""
        window = Window(thresholds=(2.0,))
        for t in range(300):
            window.add(t + 0.05, ok=True, latency=0.05)
        window.add(300.0, ok=False)
        window.add(301.0, ok=False, latency=3.0)
        assert window.stats(301.0).run_silent
