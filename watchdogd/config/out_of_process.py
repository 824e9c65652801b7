"""The daemon's config, read and validated by a short-lived child process.

Validation needs PyYAML, pydantic and the validators pydantic builds for every config class:
about 10 MB that a running daemon would otherwise keep for its whole life to use once per start
and reload (issue #16). The child (``config.check_process``) runs the same loader as
``check-config`` and writes back, pickled, either the config (plain frozen dataclasses, whose
modules import no validation library) or its problems. The pickle comes from our own
interpreter and package over a pipe, never from a file or the network.

At start the child runs while the daemon imports its own modules (``PendingConfig``); a reload
waits for it in a thread, not on the event loop, and a reload that fails keeps the old config.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
from pathlib import Path

import watchdogd
from watchdogd.config.schema import Config
from watchdogd.errors import ConfigError, ConfigProblem

__all__ = ["CHECK_TIMEOUT", "PendingConfig", "reload_config"]

#: A config of 1000 targets validates in about a second; a child that takes a minute is stuck.
CHECK_TIMEOUT = 60.0


def _command(path: str | Path) -> list[str]:
    return [sys.executable, "-m", "watchdogd.config.check_process", str(path)]


def _environment() -> dict[str, str]:
    """The daemon's environment (the config's ``${VAR}``s), and the path this package was
    imported from, so the child loads the same code."""
    package_root = str(Path(watchdogd.__file__).resolve().parent.parent)
    inherited = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": f"{package_root}{os.pathsep}{inherited}" if inherited else package_root,
    }


class PendingConfig:
    """A config being validated by a child process, started now; :meth:`result` waits."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._child = subprocess.Popen(
            _command(path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environment(),
        )

    def result(self) -> Config:
        """The config, or ``ConfigError`` with every problem, as ``load_config`` raises."""
        try:
            out, err = self._child.communicate(timeout=CHECK_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.communicate()
            raise _timed_out(self.path) from None
        return _decode(self.path, self._child.returncode, out, err)


async def reload_config(path: str | Path) -> Config:
    """The config at ``path``, validated by a child process while the event loop runs on."""
    return await asyncio.to_thread(lambda: PendingConfig(path).result())


def _timed_out(path: str) -> ConfigError:
    return ConfigError(
        path, [ConfigProblem(1, (), f"not validated within {CHECK_TIMEOUT:g} s; try again")]
    )


def _decode(path: str, returncode: int | None, out: bytes, err: bytes) -> Config:
    if returncode != 0 or not out:
        # The child reports every failure of its own; this is one before its code ran (an
        # interpreter that cannot import watchdogd): its last line says which, and it holds
        # nothing from the config.
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(
            path,
            [
                ConfigProblem(
                    1, (), f"the config check process failed (exit {returncode}): {last[0]}"
                )
            ],
        )
    kind, value = pickle.loads(out)  # noqa: S301 - written by our own child, see above
    if kind == "error":
        file, problems = value
        raise ConfigError(
            file, [ConfigProblem(line, tuple(at), text) for line, at, text in problems]
        )
    if kind == "crash":
        raise ConfigError(path, [ConfigProblem(1, (), f"the config check failed: {value}")])
    config: Config = value
    return config
