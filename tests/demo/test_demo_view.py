"""What the demo prints: the live view, the plain lines and the summary, from API-shaped data."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from watchdogd.demo.summary import DemoResult, summary_lines
from watchdogd.demo.traffic import Outcome, TrafficSummary, summarize
from watchdogd.demo.view import LiveReporter, PlainReporter, Snapshot, make_reporter

QUIET = TrafficSummary(requests=100, errors=0, unanswered=0, p95=0.004)


def status(state: str, verdict: str = "ok") -> dict[str, Any]:
    return {
        "state": state,
        "current_release": {"image": "v2", "image_ref": "v2"},
        "known_good_release": {"image": "v1", "image_ref": "v1"},
        "checks": [
            {
                "name": "traffic",
                "requests": 56,
                "errors": 14,
                "error_ratio": 0.25,
                "latency_seconds": {"p95": 0.004},
                "source_up": True,
                "last_detail": "",
            }
        ],
        "gates": [
            {
                "gate": "traffic:error_rate",
                "verdict": verdict,
                "value": 0.25,
                "threshold": 0.01,
                "reason": "error ratio 25% (Wilson lower bound 13.3% at 99.5%) > 1%",
            }
        ],
    }


EVENTS = [
    {
        "id": 7,
        "at": 1000.0 + 3.9,
        "kind": "incident_started",
        "incident_id": "i-1",
        "message": "playbook started for app: error ratio 25% (Wilson lower bound 13.3% at "
        "99.5%) > 1% over 56 samples; v2 -> v1",
        "data": {"trigger_kind": "gate", "trigger_name": "traffic:error_rate"},
    },
    {
        "id": 8,
        "at": 1000.0 + 6.2,
        "kind": "incident_finished",
        "incident_id": "i-1",
        "message": "playbook succeeded after 2.3 s: playbook completed",
        "data": {
            "state": "succeeded",
            "duration_seconds": 2.3,
            "steps": [
                {"index": 0, "action": "rollback", "status": "succeeded", "detail": "restored v1"}
            ],
        },
    },
]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class TestChoosingAView:
    def test_terminal_gets_the_live_view(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A terminal gets the live view; a pipe, TERM=dumb or --plain get plain lines."""
        monkeypatch.setenv("TERM", "xterm")
        assert isinstance(make_reporter("t", plain=False, out=Terminal()), LiveReporter)
        assert isinstance(make_reporter("t", plain=True, out=Terminal()), PlainReporter)
        assert isinstance(make_reporter("t", plain=False, out=io.StringIO()), PlainReporter)
        monkeypatch.setenv("TERM", "dumb")
        assert isinstance(make_reporter("t", plain=False, out=Terminal()), PlainReporter)


class TestLiveView:
    def test_shows_checks_gates_users_and_incident(self) -> None:
        """The block names each check and gate with its numbers, and the incident's steps."""
        view = LiveReporter("demo", out=Terminal())
        view.note(0.1, "deployed v2")
        view.show(Snapshot(5.0, status("rolling_back", "breached"), EVENTS[:1], QUIET))
        text = "\n".join(view.render(Snapshot(5.0, status("rolling_back", "breached"), [], QUIET)))
        assert "ROLLING_BACK" in text
        assert "traffic:error_rate" in text
        assert "BREACHED" in text
        assert "25.0%" in text
        assert "deployed v2" in text
        assert "! playbook started for app" in text
        assert "users (last 5 s): 100 requests, 0 % failed" in text

    def test_redraws_in_place_without_wrapping(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The second picture moves the cursor up over the first; no line is wider than the
        terminal, so none wraps and breaks the redraw."""
        monkeypatch.setenv("COLUMNS", "80")
        out = Terminal()
        view = LiveReporter("demo " + "x" * 300, out=out)
        view.show(Snapshot(1.0, status("baking"), [], QUIET))
        drawn = out.getvalue().count("\n")
        view.show(Snapshot(2.0, status("baking"), [], QUIET))
        assert f"\x1b[{drawn}F" in out.getvalue()
        assert max(len(line) for line in out.getvalue().split("\x1b[J")[-1].splitlines()) < 80


class TestPlainLines:
    def test_one_line_per_change(self) -> None:
        """A state or a breach is printed once when it changes, and each audit event once."""
        out = io.StringIO()
        view = PlainReporter(out)
        view.show(Snapshot(1.0, status("baking"), [], QUIET))
        view.show(Snapshot(1.5, status("baking"), [], QUIET))
        view.show(Snapshot(2.0, status("rolling_back", "breached"), EVENTS[:1], QUIET))
        view.show(Snapshot(2.5, status("rolling_back", "breached"), [], QUIET))
        lines = out.getvalue().splitlines()
        assert sum("app is baking" in line for line in lines) == 1
        assert sum("gate traffic:error_rate breached" in line for line in lines) == 1
        assert sum("audit: incident_started" in line for line in lines) == 1
        assert lines[0].startswith("[  1.0s]")


class TestSummary:
    def test_success_names_gate_numbers_times_and_files(self, tmp_path: Path) -> None:
        """Detection and restore times are counted from the deploy; the gate's numbers and
        the audit log's path are given."""
        result = DemoResult("errors", "release directory", deployed_at=1000.0)
        result.started, result.finished = EVENTS
        result.restored, result.restored_detail = True, "current -> releases/v1"
        result.files["audit_db"] = tmp_path / "watchdogd.db"
        text = "\n".join(summary_lines(result))
        assert result.rolled_back
        assert "watchdogd rolled the bad release back." in text
        assert "3.9 s after the deploy, by gate traffic:error_rate:" in text
        assert "error ratio 25% (Wilson lower bound 13.3% at 99.5%) > 1% over 56 samples" in text
        assert "6.2 s after the deploy (the playbook succeeded in 2.3 s)" in text
        assert "1. rollback succeeded: restored v1" in text
        assert f"audit log    {tmp_path / 'watchdogd.db'} (SQLite)" in text

    def test_failure_says_why(self) -> None:
        """Without a finished incident the summary says what happened instead."""
        result = DemoResult("latency", "release directory", deployed_at=1000.0)
        result.problem = "the target ended frozen, not rolled_back, within 40 s"
        text = "\n".join(summary_lines(result))
        assert not result.rolled_back
        assert "did not end in a rollback: the target ended frozen" in text


class TestTrafficSummary:
    def test_counts_errors_unanswered_and_p95(self) -> None:
        """5xx answers and requests nobody answered both count as failed."""
        outcomes = [Outcome(float(i), 200, 0.01) for i in range(18)]
        outcomes += [Outcome(18.0, 500, 0.02), Outcome(19.0, None, 1.0)]
        summary = summarize(outcomes)
        assert (summary.requests, summary.errors, summary.unanswered) == (20, 1, 1)
        assert summary.failed == 2
        assert summary.p95 == 0.02
        assert summary.describe() == "20 requests, 10 % failed, p95 20 ms"
