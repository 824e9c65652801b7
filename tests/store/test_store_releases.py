"""Releases, known-good candidates, history pruning and quarantine."""

from __future__ import annotations

import pytest
from store_fakes import FakeClock, release

from watchdogd.errors import StoreError
from watchdogd.store import ReleaseState, Store


class TestRecordRelease:
    def test_first_sighting_is_new_and_baking(self, store: Store) -> None:
        """A release seen for the first time is recorded as baking, with its spec."""
        record, new = store.record_release(release("v1"))
        assert new
        assert record.state is ReleaseState.BAKING
        assert record.release == release("v1")
        assert record.release.spec == {"Config": {"Env": ["VERSION=v1"]}}

    def test_seeing_it_again_keeps_its_state(self, store: Store, clock: FakeClock) -> None:
        """Recording a known release again moves it to the top and keeps known-good."""
        store.record_release(release("v1"))
        store.mark_known_good("api", release("v1").id)
        clock.advance(10)
        store.record_release(release("v2"))
        clock.advance(10)
        record, new = store.record_release(release("v1"))
        assert not new
        assert record.state is ReleaseState.KNOWN_GOOD
        assert [r.release.image for r in store.releases("api")] == ["sha256:v1", "sha256:v2"]

    def test_same_image_new_config_is_another_release(self, store: Store) -> None:
        """A changed configuration makes a new release of the same image."""
        store.record_release(release("v1", config="a"))
        _, new = store.record_release(release("v1", config="b"))
        assert new
        assert len(store.releases("api")) == 2

    def test_unknown_release_state_change_is_an_error(self, store: Store) -> None:
        """Marking a release the store never saw raises StoreError."""
        with pytest.raises(StoreError, match="nope"):
            store.mark_known_good("api", "nope")


class TestKnownGood:
    def test_newest_known_good_first(self, store: Store, clock: FakeClock) -> None:
        """Candidates are ordered by when they became known-good, newest first."""
        for version in ("v1", "v2", "v3"):
            store.record_release(release(version))
            clock.advance(60)
            store.mark_known_good("api", release(version).id)
        store.record_release(release("v4"))  # baking, not a candidate
        candidates = store.known_good_candidates("api")
        assert [c.release.image for c in candidates] == ["sha256:v3", "sha256:v2", "sha256:v1"]
        newest = store.newest_known_good("api")
        assert newest is not None
        assert newest.release == release("v3")

    def test_quarantined_images_are_never_candidates(self, store: Store, clock: FakeClock) -> None:
        """A quarantined image is skipped even if it was known-good."""
        for version in ("v1", "v2"):
            store.record_release(release(version))
            clock.advance(60)
            store.mark_known_good("api", release(version).id)
        store.quarantine("api", "sha256:v2", "rolled back: error rate 12%")
        newest = store.newest_known_good("api")
        assert newest is not None
        assert newest.release.image == "sha256:v1"

    def test_excluding_a_release(self, store: Store, clock: FakeClock) -> None:
        """``excluding`` leaves out the given release ids."""
        store.record_release(release("v1"))
        store.mark_known_good("api", release("v1").id)
        assert store.newest_known_good("api", excluding=[release("v1").id]) is None

    def test_targets_are_separate(self, store: Store) -> None:
        """Another target's known-good release is never a candidate."""
        store.record_release(release("v1", target="web"))
        store.mark_known_good("web", release("v1", target="web").id)
        assert store.newest_known_good("api") is None


class TestHistoryPruning:
    def test_keeps_the_n_most_recently_seen(self, store: Store, clock: FakeClock) -> None:
        """Beyond ``keep`` releases the oldest ones are dropped."""
        for n in range(6):
            clock.advance(1)
            store.record_release(release(f"v{n}"), keep=3)
        assert [r.release.image for r in store.releases("api")] == [
            "sha256:v5",
            "sha256:v4",
            "sha256:v3",
        ]

    def test_never_prunes_the_newest_known_good(self, store: Store, clock: FakeClock) -> None:
        """The newest known-good release survives however many bad ones follow it."""
        store.record_release(release("good"))
        store.mark_known_good("api", release("good").id)
        clock.advance(1)
        store.record_release(release("older-good"))  # seen later, known-good earlier
        for n in range(5):
            clock.advance(1)
            store.record_release(release(f"bad{n}"), keep=2)
        images = [r.release.image for r in store.releases("api")]
        assert images == ["sha256:bad4", "sha256:bad3", "sha256:good"]


class TestQuarantine:
    def test_quarantine_and_clear(self, store: Store) -> None:
        """Quarantine marks the image's releases; clearing it makes them bad, not good."""
        store.record_release(release("v2"))
        store.quarantine("api", "sha256:v2", "error rate 12% > 1%", incident_id="inc-1")
        assert store.is_quarantined("api", "sha256:v2")
        assert not store.is_quarantined("web", "sha256:v2")
        (entry,) = store.quarantined("api")
        assert (entry.image, entry.reason, entry.incident_id) == (
            "sha256:v2",
            "error rate 12% > 1%",
            "inc-1",
        )
        record = store.release("api", release("v2").id)
        assert record is not None
        assert record.state is ReleaseState.QUARANTINED

        assert store.unquarantine("api", "sha256:v2")
        assert not store.unquarantine("api", "sha256:v2")
        assert not store.is_quarantined("api", "sha256:v2")
        record = store.release("api", release("v2").id)
        assert record is not None
        assert record.state is ReleaseState.BAD

    def test_quarantine_survives_pruning(self, store: Store, clock: FakeClock) -> None:
        """Dropping a release from the history does not forget its quarantine."""
        store.record_release(release("bad"))
        store.quarantine("api", "sha256:bad", "rolled back")
        for n in range(4):
            clock.advance(1)
            store.record_release(release(f"v{n}"), keep=2)
        assert store.release("api", release("bad").id) is None
        assert store.is_quarantined("api", "sha256:bad")
