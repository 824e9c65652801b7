"""``RunningRelease``, the one owner of what a target runs, and the trigger's string form at
the edges: plain values."""

from __future__ import annotations

import json

import pytest

from watchdogd.model import Release, Trigger, TriggerKind
from watchdogd.watch.running import RunningRelease

V1 = Release("web", "sha256:v1", "cfg", "app:v1")
V2 = Release("web", "sha256:v2", "cfg", "app:v2")


class TestRunningRelease:
    def test_the_driver_sees_the_first_and_every_other_release(self) -> None:
        running = RunningRelease()
        assert running.release is None
        assert running.seen(V1) is True
        assert running.seen(Release("web", "sha256:v1", "cfg", "other:tag")) is False  # same id
        assert running.release == V1
        assert running.seen(V2) is True
        assert running.release == V2

    def test_a_playbook_says_what_it_restored(self) -> None:
        running = RunningRelease()
        running.seen(V2)
        running.playbook_says(V1)
        assert running.release == V1
        assert running.seen(V1) is False  # the next poll agrees: not a new release
        running.playbook_says(None)
        assert running.release is None


class TestTriggerEdges:
    def test_the_kind_is_a_string_only_in_the_dict_form(self) -> None:
        trigger = Trigger(TriggerKind.ALERT, "HighErrors", "firing", {"severity": "critical"})
        data = trigger.to_dict()
        assert type(data["kind"]) is str
        assert data == json.loads(json.dumps(data))
        back = Trigger.from_dict(data)
        assert back == trigger
        assert back.kind is TriggerKind.ALERT

    def test_an_unknown_kind_is_refused(self) -> None:
        with pytest.raises(ValueError, match="'later'"):
            Trigger.from_dict({"kind": "later", "name": "x", "reason": "y"})
