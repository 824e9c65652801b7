"""Guards: when a playbook may start. Plain values, no clock."""

from __future__ import annotations

from watchdogd.core.guards import GuardPolicy, refusal
from watchdogd.model import TriggerKind

POLICY = GuardPolicy(cooldown=600.0, max_per_hour=3)


def refuse(trigger: TriggerKind = TriggerKind.GATE, **kwargs: object) -> str | None:
    facts: dict[str, object] = {
        "now": 10_000.0,
        "running": False,
        "frozen": False,
        "rollback_times": [],
    }
    facts.update(kwargs)
    return refusal(POLICY, trigger, **facts)  # type: ignore[arg-type]


class TestGuards:
    def test_first_rollback_is_allowed(self) -> None:
        """With no history, a gate may start the playbook."""
        assert refuse() is None

    def test_one_playbook_at_a_time(self) -> None:
        """Even an operator cannot start a second playbook while one runs."""
        assert (
            refuse(TriggerKind.MANUAL, running=True)
            == "a playbook is already running for this target"
        )

    def test_cooldown_after_a_rollback(self) -> None:
        """A gate inside the cooldown is refused; after it, allowed."""
        assert "cooldown" in str(refuse(rollback_times=[10_000.0 - 100]))
        assert refuse(rollback_times=[10_000.0 - 700]) is None

    def test_rate_limit_per_hour(self) -> None:
        """The fourth rollback within an hour is refused, even for a quarantined release."""
        times = [10_000.0 - 3000, 10_000.0 - 2000, 10_000.0 - 1000]
        assert "3 rollbacks in the last hour" in str(
            refuse(TriggerKind.QUARANTINE, rollback_times=times)
        )

    def test_quarantine_skips_the_cooldown(self) -> None:
        """A known-bad release coming back is rolled back at once."""
        assert refuse(TriggerKind.QUARANTINE, rollback_times=[10_000.0 - 10]) is None

    def test_frozen_stops_automation_not_operators(self) -> None:
        """Frozen refuses gates and alerts; an operator's request passes."""
        assert "frozen" in str(refuse(TriggerKind.ALERT, frozen=True))
        assert refuse(TriggerKind.MANUAL, frozen=True, rollback_times=[10_000.0 - 1]) is None
