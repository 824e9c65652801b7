"""A store that cannot be written says so loudly: StoreError, ``writable`` False, recovery.

The simulated cases use sqlite's ``PRAGMA query_only``. The real ones mount a small tmpfs
(root only): one filled up to the last byte (disk full), one bind-mounted read-only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_fakes import release

from watchdogd.errors import StoreError
from watchdogd.model import Trigger, TriggerKind
from watchdogd.store import Store


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs; skips where mounting is not allowed (not root, no CAP_SYS_ADMIN)."""
    mountpoint = tmp_path / "tmpfs"
    mountpoint.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    try:
        _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint))
    except subprocess.CalledProcessError as err:
        pytest.skip(f"cannot mount a tmpfs here: {err.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        _umount(mountpoint)


class TestReadOnlyMode:
    def test_reads_work_writes_raise(self, tmp_path: Path) -> None:
        """A read-only store reads, and every write is a StoreError that names the cause."""
        path = tmp_path / "watchdogd.db"
        with Store(path) as store:
            store.record_release(release("v1"))
        errors: list[StoreError] = []
        with Store(path, read_only=True, on_error=errors.append) as store:
            assert [r.release.image for r in store.releases("api")] == ["sha256:v1"]
            assert not store.writable
            with pytest.raises(StoreError, match="read-only") as caught:
                store.audit("note", "x")
            assert isinstance(caught.value.__cause__, Exception)
            assert not store.check_writable()
            assert not store.writable
        assert len(errors) == 2
        assert str(path) in str(errors[0])

    def test_missing_database(self, tmp_path: Path) -> None:
        """A read-only store never creates the file it was asked to read."""
        with pytest.raises(StoreError, match="does not exist"):
            Store(tmp_path / "nothing.db", read_only=True)
        assert not (tmp_path / "nothing.db").exists()


class TestWritableFlag:
    def test_flips_on_failure_and_back_on_success(self, store: Store) -> None:
        """A failed write sets ``writable`` False; the next write that lands sets it True."""
        assert store.check_writable()
        store._db._conn.execute("PRAGMA query_only = ON")  # the file turns read-only
        with pytest.raises(StoreError, match="attempt to write a readonly database"):
            store.remember_alert("fp", "t", "firing")
        assert not store.writable
        assert not store.check_writable()
        store._db._conn.execute("PRAGMA query_only = OFF")
        assert store.check_writable()
        assert store.writable

    def test_failed_write_leaves_nothing_behind(self, store: Store) -> None:
        """A transaction that fails is rolled back whole."""
        incident = store.create_incident(
            target="api",
            trigger=_trigger(),
            bad_release=None,
            restore_release=None,
        )
        store._db._conn.execute("PRAGMA query_only = ON")
        with pytest.raises(StoreError):
            store.step_started(incident.id, 0, "rollback")
        store._db._conn.execute("PRAGMA query_only = OFF")
        assert store.journal_for(incident.id) == []


class TestRealFilesystems:
    def test_disk_full(self, tmpfs: Path) -> None:
        """On a full disk writes fail with "disk is full" and recover once space is back."""
        store = Store(tmpfs / "watchdogd.db")
        try:
            filler = tmpfs / "filler"
            with filler.open("wb") as handle, contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            with pytest.raises(StoreError, match="disk is full"):
                store.audit("note", "big", data={"blob": "x" * 200_000})
            assert not store.writable
            filler.unlink()
            assert store.check_writable()
            store.audit("note", "after")
            assert [e.message for e in store.events()] == ["after"]
        finally:
            store.close()

    def test_read_only_filesystem(self, tmpfs: Path, tmp_path: Path) -> None:
        """A state dir on a read-only filesystem fails to open with a clear StoreError."""
        Store(tmpfs / "watchdogd.db").close()
        readonly = tmp_path / "ro"
        readonly.mkdir()
        _mount("--bind", str(tmpfs), str(readonly))
        try:
            _mount("-o", "remount,ro,bind", str(readonly))
            with pytest.raises(StoreError, match=r"cannot be opened.*read-only filesystem"):
                Store(readonly / "watchdogd.db")
        finally:
            _umount(readonly)


def _trigger() -> Trigger:
    return Trigger(kind=TriggerKind.MANUAL, name="operator", reason="test")
