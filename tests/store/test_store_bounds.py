"""What an attacker with the webhook token can make the store keep (issue 11): alert keys that
are pruned once no longer sent, audit rows of bounded size, and a damaged file that is noticed
and counted rather than reported healthy."""

from __future__ import annotations

import json
from pathlib import Path

from store_fakes import FakeClock

from tests.support.store import damaged_store
from watchdogd.errors import StoreError
from watchdogd.store import Store
from watchdogd.store.audit import MAX_AUDIT_DATA, MAX_AUDIT_TEXT, AlertNews


class TestRememberAlerts:
    def test_one_delivery_in_one_call(self, store: Store) -> None:
        keys = [("a", "t1", "firing"), ("b", "t1", "firing"), ("a", "t1", "resolved")]
        assert store.remember_alerts(keys) == [AlertNews.NEW] * 3
        assert store.remember_alerts(keys) == [AlertNews.SEEN] * 3

    def test_firing_after_its_resolution_is_late(self, store: Store) -> None:
        """Issue 16: ``resolved`` overtook ``firing``; another episode is still new."""
        store.remember_alerts([("a", "t1", "resolved")])
        assert store.remember_alerts([("a", "t1", "firing"), ("a", "t2", "firing")]) == [
            AlertNews.AFTER_RESOLVED,
            AlertNews.NEW,
        ]
        assert store.remember_alerts([("a", "t1", "firing")]) == [AlertNews.SEEN]

    def test_an_alert_still_sent_is_not_pruned(self, store: Store, clock: FakeClock) -> None:
        """Pruning drops what was not seen lately, not what was first seen long ago: an alert
        Alertmanager still repeats stays a duplicate."""
        store.remember_alerts([("repeated", "t", "firing"), ("gone", "t", "firing")])
        clock.advance(1000)
        store.remember_alerts([("repeated", "t", "firing")])
        clock.advance(10)
        assert store.forget_alerts(clock.now - 100) == 1
        assert store.remember_alerts([("repeated", "t", "firing")]) == [AlertNews.SEEN]
        assert store.remember_alerts([("gone", "t", "firing")]) == [AlertNews.NEW]


class TestAuditBounds:
    def test_long_labels_are_cut_and_say_so(self, store: Store) -> None:
        labels = {"big": "x" * 1_000_000, **{f"k{i}": "v" for i in range(200)}}
        store.audit("alert_resolved", "m" * 100_000, data={"labels": labels})
        [event] = store.events()
        assert len(event.message) < MAX_AUDIT_TEXT + 100
        assert len(json.dumps(event.data)) <= MAX_AUDIT_DATA + 100
        assert "more" in json.dumps(event.data)

    def test_many_nested_values_are_previewed(self, store: Store) -> None:
        data = {"alerts": [{"labels": {f"k{j}": "y" * 2000 for j in range(60)}}] * 60}
        store.audit("x", "many", data=data)
        [event] = store.events()
        assert event.data["truncated"] is True
        assert len(json.dumps(event.data)) <= MAX_AUDIT_DATA + 100

    def test_small_data_is_kept_as_is(self, store: Store) -> None:
        data = {"trigger": {"labels": {"alertname": "Down"}}, "ratio": 0.5, "n": [1, 2]}
        store.audit("x", "small", data=data)
        assert store.events()[0].data == data


def test_a_damaged_file_is_found_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "watchdogd.db"
    damaged_store(path)
    errors: list[StoreError] = []
    with Store(path, on_error=errors.append) as store:
        assert store.damage is None  # opening reads only the schema
        findings = store.check_integrity()
        assert findings is not None
        assert store.damage == findings
        assert len(errors) == 1
        assert "damaged" in str(errors[0])


def test_a_sound_file_has_no_findings(store: Store) -> None:
    store.audit("x", "y")
    assert store.check_integrity() is None
    assert store.damage is None
