"""A release directory, as on many plain VMs: ``path/releases/<version>/`` and a ``path/current``
symlink naming the one that runs, plus a restart command.

The release is the version directory ``current`` resolves to. Restoring repoints ``current``
atomically (a new symlink under a temporary name, then ``rename(2)`` over the old one, so a
reader never sees no link) and runs the restart command. No Docker is involved: the demo runs
on a machine without an engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import signal
from collections.abc import Sequence
from pathlib import Path

import structlog

from watchdogd.errors import TargetError
from watchdogd.model import Release, Starts, fingerprint
from watchdogd.redact import child_environment
from watchdogd.targets.base import ExecResult

log = structlog.get_logger(__name__)

# The restart command's output kept for the error message.
OUTPUT_TAIL = 2000


class ReleaseDirDriver:
    """A target that is a ``current`` symlink into a directory of releases."""

    def __init__(
        self,
        target: str,
        path: Path,
        *,
        releases: str = "releases",
        current: str = "current",
        restart: Sequence[str] | None = None,
        restart_timeout: float = 60.0,
    ) -> None:
        self.target = target
        self.path = Path(path)
        self.releases = self.path / releases
        self.link = self.path / current
        self.restart_command = list(restart) if restart else None
        self.restart_timeout = restart_timeout
        self._lock = asyncio.Lock()

    def _release(self, resolved: Path) -> Release:
        version = resolved.name
        return Release(
            target=self.target,
            image=version,
            config_hash=fingerprint({"path": str(resolved)}),
            image_ref=version,
            spec={"version": version, "path": str(resolved)},
        )

    def _read(self) -> Release | None:
        if not self.link.is_symlink():
            if self.link.exists():
                raise TargetError(f"{self.link} is not a symlink; cannot track releases by it")
            return None
        try:
            resolved = self.link.resolve(strict=True)
        except RuntimeError as err:  # Python < 3.13 reports a symlink loop this way
            raise TargetError(f"{self.link} is a symlink loop") from err
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise TargetError(f"{self.link} is a symlink loop") from err
            raise TargetError(f"{self.link} points to nothing: {err.strerror}") from err
        if not resolved.is_dir():
            raise TargetError(f"{self.link} points to {resolved}, which is not a directory")
        # The release is named by its directory: only a directory right under releases/ is
        # one; anything else (a link to ../outside/etc) would be blessed under a made-up name.
        if resolved.parent != self.releases.resolve():
            raise TargetError(
                f"{self.link} points to {resolved}, which is not a release directory "
                f"under {self.releases}"
            )
        return self._release(resolved)

    async def current(self) -> Release | None:
        try:
            # File system calls can block (NFS); keep them off the event loop.
            return await asyncio.to_thread(self._read)
        except (OSError, RuntimeError) as err:  # RuntimeError: a loop elsewhere in the path
            raise TargetError(f"cannot read {self.link}: {err}") from err

    def _repoint(self, version: str) -> bool:
        """Point ``current`` at ``releases/<version>``; False when it already does."""
        if not version or "/" in version or version in (".", ".."):
            raise TargetError(f"{version!r} is not a release directory name")
        wanted = self.releases / version
        if not wanted.is_dir():
            raise TargetError(f"release directory {wanted} does not exist")
        if self.link.is_symlink() and self.link.resolve() == wanted.resolve():
            return False
        if self.link.exists() and not self.link.is_symlink():
            raise TargetError(f"{self.link} is not a symlink; refusing to replace it")
        # Keep the link's style: a relative link survives moving the whole tree.
        relative = not self.link.is_symlink() or not os.path.isabs(os.readlink(self.link))
        target = os.path.relpath(wanted, self.link.parent) if relative else str(wanted.resolve())
        temp = self.link.with_name(f".{self.link.name}.wd-{secrets.token_hex(4)}")
        os.symlink(target, temp)
        try:
            os.replace(temp, self.link)
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        # The rename is durable only once the directory entry is on disk.
        fd = os.open(self.link.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    async def restore(self, release: Release, stop_timeout: float) -> None:
        version = str(release.spec.get("version") or release.image)
        async with self._lock:
            try:
                changed = await asyncio.to_thread(self._repoint, version)
            except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop
                raise TargetError(f"cannot repoint {self.link} to {version}: {err}") from err
            log.info(
                "target_release_dir_pointed", link=str(self.link), version=version, changed=changed
            )
            # Restart even when the link already pointed there: after a crash between the
            # rename and the restart, the old code may still be the one running.
            if self.restart_command:
                await self._restart(version)

    async def _restart(self, version: str) -> None:
        command = self.restart_command or []
        # Never the daemon's own environment: it holds the API token and the config's secrets.
        env = child_environment(
            {
                "WATCHDOGD_TARGET": self.target,
                "WATCHDOGD_RELEASE": version,
                "WATCHDOGD_RELEASE_DIR": str(self.link),
            }
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                cwd=self.path,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Its own process group, so a timeout kills what it started too.
                start_new_session=True,
            )
        except OSError as err:
            raise TargetError(f"restart command {command!r} could not start: {err}") from err
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), self.restart_timeout)
        except (TimeoutError, asyncio.CancelledError) as err:
            # Never leave a half-run restart behind, whether we gave up or were cancelled.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.shield(proc.wait())
            if isinstance(err, asyncio.CancelledError):
                raise
            raise TargetError(
                f"restart command {command!r} did not finish in {self.restart_timeout:g} s"
            ) from err
        if proc.returncode != 0:
            tail = output.decode(errors="replace")[-OUTPUT_TAIL:].strip()
            raise TargetError(f"restart command {command!r} exited with {proc.returncode}: {tail}")

    def starts(self) -> Starts | None:
        # The app's restart is the playbook's own `restart` command, not somebody else's.
        return None

    async def healthy(self) -> bool | None:
        return None

    async def exec(
        self,
        command: Sequence[str],
        *,
        user: str | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        raise TargetError(
            f"target {self.target} is a release directory: no container to exec in "
            "(use a command step)"
        )
