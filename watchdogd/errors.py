"""The exceptions watchdogd raises, in one tree.

Every error from a third-party library (docker, aiohttp, redis, psycopg, sqlite3) is wrapped at the
edge that called it, so the core and the daemon only ever see these:

    WatchdogError
    ├── ConfigError          the config file is wrong; carries every problem with its line
    ├── SourceUnavailable    a signal source cannot reach what it watches: data is unknown, not bad
    ├── StoreError           the state store cannot be read or written
    ├── TargetError          a target could not be inspected or changed (Docker, release dir)
    ├── StepFailed           a playbook step failed; carries the step and the reason
    ├── ControlRefused       an API request the daemon refuses; carries the HTTP status
    └── StartupError         the daemon cannot start here: state_dir locked or unusable, the
                             listen address in use or unresolvable (``run`` exits 3)
"""

from __future__ import annotations

from dataclasses import dataclass


class WatchdogError(Exception):
    """Base of every error watchdogd raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake in a config file: where it is and what is wrong."""

    line: int
    path: tuple[str | int, ...]
    message: str

    @property
    def field(self) -> str:
        """The path as users write it: ``targets[0].gates[1].above``."""
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text


class ConfigError(WatchdogError):
    """A config file that cannot be used; ``str()`` gives ``file:line: field: message`` lines."""

    def __init__(self, file: str, problems: list[ConfigProblem]) -> None:
        self.file = file
        self.problems = sorted(problems, key=lambda p: p.line)
        super().__init__(self.render())

    def render(self) -> str:
        lines = []
        for problem in self.problems:
            where = f"{problem.field}: " if problem.path else ""
            lines.append(f"{self.file}:{problem.line}: {where}{problem.message}")
        return "\n".join(lines)


class SourceUnavailable(WatchdogError):
    """A source could not observe its target; the sample is unknown, never a failure."""


class StoreError(WatchdogError):
    """The SQLite state store failed (disk full, read-only, corrupt)."""


class TargetError(WatchdogError):
    """Inspecting or changing a target failed."""


class StepFailed(WatchdogError):
    """A playbook step did not succeed."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"{step}: {reason}")


class ControlRefused(WatchdogError):
    """An operator or webhook request the daemon will not carry out (unknown target, a playbook
    already running, a guard). ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class StartupError(WatchdogError):
    """The daemon cannot start in this environment; the message is one line for the operator."""
