"""The release-directory driver: a ``current`` symlink into ``releases/``, no Docker at all."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from watchdogd.errors import TargetError
from watchdogd.targets.release_dir import ReleaseDirDriver


def layout(root: Path, *versions: str, current: str | None = None) -> Path:
    for version in versions:
        (root / "releases" / version).mkdir(parents=True)
    if current is not None:
        (root / "current").symlink_to(Path("releases") / current)
    return root


def recorder(root: Path) -> list[str]:
    """A restart command that appends what it saw to ``restarts.log``."""
    script = (
        "import os, pathlib; "
        f"p = pathlib.Path({str(root / 'restarts.log')!r}); "
        "p.open('a').write(os.environ['WATCHDOGD_RELEASE'] + ' ' "
        "+ os.path.realpath('current') + '\\n')"
    )
    return [sys.executable, "-c", script]


class TestCurrent:
    async def test_release_is_the_directory_current_points_to(self, tmp_path: Path) -> None:
        """The version directory's name is the release; a switch is a new release."""
        driver = ReleaseDirDriver("app", layout(tmp_path, "v1", "v2", current="v1"))
        first = await driver.current()
        assert first is not None
        assert (first.image, first.image_ref) == ("v1", "v1")
        (tmp_path / "current").unlink()
        (tmp_path / "current").symlink_to(Path("releases") / "v2")
        second = await driver.current()
        assert second is not None
        assert second.image == "v2"
        assert second.config_hash != first.config_hash
        assert second != first

    async def test_no_link_means_nothing_runs(self, tmp_path: Path) -> None:
        assert await ReleaseDirDriver("app", layout(tmp_path, "v1")).current() is None

    async def test_a_directory_instead_of_a_link_is_an_error(self, tmp_path: Path) -> None:
        (layout(tmp_path, "v1") / "current").mkdir()
        with pytest.raises(TargetError, match="not a symlink"):
            await ReleaseDirDriver("app", tmp_path).current()

    async def test_health_and_exec_have_no_container(self, tmp_path: Path) -> None:
        driver = ReleaseDirDriver("app", layout(tmp_path, "v1", current="v1"))
        assert await driver.healthy() is None
        with pytest.raises(TargetError, match="no container"):
            await driver.exec(["true"])


class TestRestore:
    async def test_restore_repoints_current_and_runs_the_restart_command(
        self, tmp_path: Path
    ) -> None:
        """The link moves back to v1 (still relative), then the restart command runs once."""
        root = layout(tmp_path, "v1", "v2", current="v1")
        driver = ReleaseDirDriver("app", root, restart=recorder(root))
        good = await driver.current()
        assert good is not None
        (root / "current").unlink()
        (root / "current").symlink_to(Path("releases") / "v2")

        await driver.restore(good, stop_timeout=10)

        assert os.readlink(root / "current") == os.path.join("releases", "v1")
        assert await driver.current() == good
        log = (root / "restarts.log").read_text().splitlines()
        assert log == [f"v1 {(root / 'releases' / 'v1').resolve()}"]
        assert [p.name for p in root.iterdir() if p.name.startswith(".current")] == []

    async def test_absolute_links_stay_absolute(self, tmp_path: Path) -> None:
        root = layout(tmp_path, "v1", "v2")
        (root / "current").symlink_to(root / "releases" / "v2")
        driver = ReleaseDirDriver("app", root)
        good = driver._release((root / "releases" / "v1").resolve())
        await driver.restore(good, stop_timeout=10)
        assert os.readlink(root / "current") == str((root / "releases" / "v1").resolve())

    async def test_restore_again_keeps_the_link_and_restarts_again(self, tmp_path: Path) -> None:
        """Idempotent on the link; the restart reruns, since a crash may have cut it short."""
        root = layout(tmp_path, "v1", current="v1")
        driver = ReleaseDirDriver("app", root, restart=recorder(root))
        good = await driver.current()
        assert good is not None
        before = os.lstat(root / "current").st_ino
        await driver.restore(good, stop_timeout=10)
        assert os.lstat(root / "current").st_ino == before
        assert len((root / "restarts.log").read_text().splitlines()) == 1

    async def test_failing_restart_command_is_a_target_error(self, tmp_path: Path) -> None:
        root = layout(tmp_path, "v1", "v2", current="v2")
        command = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]
        driver = ReleaseDirDriver("app", root, restart=command)
        good = driver._release((root / "releases" / "v1").resolve())
        with pytest.raises(TargetError, match="exited with 3: boom"):
            await driver.restore(good, stop_timeout=10)
        # The link moved anyway: the files are right, the process is what failed.
        assert (root / "current").resolve() == (root / "releases" / "v1").resolve()

    async def test_hanging_restart_command_is_killed_at_its_timeout(self, tmp_path: Path) -> None:
        root = layout(tmp_path, "v1", current="v1")
        command = [sys.executable, "-c", "import time; time.sleep(30)"]
        driver = ReleaseDirDriver("app", root, restart=command, restart_timeout=0.5)
        good = await driver.current()
        assert good is not None
        began = time.monotonic()
        with pytest.raises(TargetError, match=r"did not finish in 0\.5 s"):
            await driver.restore(good, stop_timeout=10)
        assert time.monotonic() - began < 5

    async def test_missing_release_directory_is_an_error(self, tmp_path: Path) -> None:
        root = layout(tmp_path, "v1", current="v1")
        driver = ReleaseDirDriver("app", root)
        gone = driver._release(root / "releases" / "v0")
        with pytest.raises(TargetError, match="does not exist"):
            await driver.restore(gone, stop_timeout=10)
        assert (root / "current").resolve().name == "v1"

    async def test_a_version_cannot_escape_the_releases_directory(self, tmp_path: Path) -> None:
        root = layout(tmp_path, "v1", current="v1")
        driver = ReleaseDirDriver("app", root)
        escape = driver._release(root / "releases" / "v1")
        escape = type(escape)("app", "..", "x", spec={"version": ".."})
        with pytest.raises(TargetError, match="not a release directory name"):
            await driver.restore(escape, stop_timeout=10)
