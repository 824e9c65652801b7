"""The exceptions watchdogd raises, in one tree: every class is defined here.

Every error from a third-party library (docker, aiohttp, redis, psycopg, sqlite3) is wrapped at the
edge that called it, so the core and the daemon only ever see these. Domain code never raises
an HTTP exception: the API turns ``ControlRefused`` into its status.

    WatchdogError
    ├── ConfigError          the config file is wrong; carries every problem with its line
    ├── SourceUnavailable    a signal source cannot reach what it watches: data is unknown, not bad
    ├── ProbeFailed          a probe's check of its target failed: a failure sample, with a
    │                        reason free of secrets (auth_flow's steps)
    ├── StoreError           the state store cannot be read or written
    │   └── SchemaTooNew     the database was written by a newer watchdogd
    ├── TargetError          a target could not be inspected or changed (Docker, release dir)
    │   ├── ObjectMissing    the container, image or network named does not exist
    │   ├── VersionConflict  a Swarm object changed since it was read (compare-and-swap lost)
    │   ├── ObjectExists     a Swarm object of that name exists already
    │   └── NotSingleReplica a blue-green deploy found no single running replica to be blue
    ├── TrafficError         HAProxy's Runtime API is unreachable or refused a command, or a
    │                        traffic switch could not be applied and verified
    ├── StepFailed           a playbook step failed; carries the step and the reason
    ├── ClaimLost            another watchdogd took over the incident this one was running
    ├── MirrorWriteRefused   an edit of the Swarm state document must not be written, and why
    ├── ControlRefused       an API request the daemon refuses; carries the HTTP status
    ├── StartupError         the daemon cannot start here: state_dir locked or unusable, the
    │                        listen address in use or unresolvable (``run`` exits 3)
    ├── ClientError          the CLI could not ask the daemon, or it said no; carries the exit code
    ├── DemoError            ``watchdogd demo`` cannot run here; the message says what to do
    └── IllegalTransition    a bug: an event the target's state does not accept (core.incident)
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


class SchemaTooNew(StoreError):
    """The database was written by a newer watchdogd than this one."""


class TargetError(WatchdogError):
    """Inspecting or changing a target failed."""


class NotSingleReplica(TargetError):
    """A blue-green deploy of a Compose service found none, or more than one, running replica
    to be blue: a state of the target (the API answers 409), not an engine that is away."""


class ObjectMissing(TargetError):
    """The container, image or network named in the call does not exist."""


class VersionConflict(TargetError):
    """The object changed since it was read (the version compare-and-swap failed)."""


class ObjectExists(TargetError):
    """An object of that name exists already (a concurrent create won)."""


class ProbeFailed(WatchdogError):
    """A step of a probe did not pass; ``reason`` is already free of secrets."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrafficError(WatchdogError):
    """HAProxy could not be driven: ``unreachable`` when its socket did not answer (worth a
    retry), otherwise HAProxy refused ``command`` and said ``reason``."""

    def __init__(self, command: str, reason: str, *, unreachable: bool = False) -> None:
        self.command = command
        self.reason = reason
        self.unreachable = unreachable
        super().__init__(f"HAProxy: {command}: {reason}")


class StepFailed(WatchdogError):
    """A playbook step did not succeed."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"{step}: {reason}")


class ClaimLost(WatchdogError):
    """Another watchdogd took over the incident this one was running (its lease ran out, e.g.
    while this process was paused): this one must not act any further."""


class MirrorWriteRefused(WatchdogError):
    """Raised by an edit of the Swarm state document: the write must not happen, for this
    reason."""


class ControlRefused(WatchdogError):
    """An operator or webhook request the daemon will not carry out (unknown target, a playbook
    already running, a guard). ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class StartupError(WatchdogError):
    """The daemon cannot start in this environment; the message is one line for the operator."""


class ClientError(WatchdogError):
    """The daemon could not be asked, or said no; ``exit_code`` is what the CLI returns."""

    def __init__(self, message: str, exit_code: int, status: int | None = None) -> None:
        self.exit_code = exit_code
        self.status = status  # the HTTP status the daemon answered, if it answered
        super().__init__(message)


class DemoError(WatchdogError):
    """A demo stage cannot run here (no engine, no busybox) or failed to set up; the message
    says what to do about it."""


class IllegalTransition(WatchdogError):
    """An event arrived that the current state does not accept (a bug in the caller)."""

    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"event {str(event)!r} is not allowed in state {str(state)!r}")
        self.state = state
        self.event = event
