"""The playbook's steps as typed, validated objects: one action each, plus the common keys.

See ``schema`` for the rest of the config, and docs/playbook.md for what each step does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le, MinLen

from watchdogd.config.base import Name, StatusList, Strict, alias
from watchdogd.config.units import Duration

# --- playbook steps -------------------------------------------------------------------------


class OnFailure(StrEnum):
    ABORT = "abort"
    CONTINUE = "continue"


@dataclass(frozen=True, kw_only=True)
class ExecAction(Strict):
    """Run a command inside the bad release's container (e.g. a schema downgrade)."""

    command: Annotated[list[str], MinLen(1)]
    user: str | None = None
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CommandAction(Strict):
    """Run a local process on the watchdogd host."""

    command: Annotated[list[str], MinLen(1)]
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SqlAction(Strict):
    """Run a SQL file against PostgreSQL in one transaction."""

    dsn: str
    file: Path
    lock_timeout: Duration = 5.0
    statement_timeout: Duration = 60.0


@dataclass(frozen=True, kw_only=True)
class RedisInvalidateAction(Strict):
    url: str
    pattern: str | None = None
    flush: bool = False

    def __post_init__(self) -> None:
        if (self.pattern is None) == (not self.flush):
            raise ValueError('give exactly one of "pattern" or "flush: true"')


@dataclass(frozen=True, kw_only=True)
class HttpAction(Strict):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    json_body: Any = field(default=None, metadata=alias("json"))
    expect_status: StatusList = field(default_factory=lambda: [200, 201, 202, 204])


@dataclass(frozen=True, kw_only=True)
class RollbackAction(Strict):
    stop_timeout: Duration | None = None


@dataclass(frozen=True, kw_only=True)
class WaitHealthyAction(Strict):
    timeout: Duration = 30.0
    # Samples each probe must take of the restored release, after the restore, newest ok.
    min_samples: Annotated[int, Ge(1), Le(20)] = 1


@dataclass(frozen=True, kw_only=True)
class NotifyAction(Strict):
    to: Name
    message: str | None = None


STEP_ACTIONS: dict[str, type[Strict]] = {
    "notify": NotifyAction,
    "exec": ExecAction,
    "command": CommandAction,
    "sql": SqlAction,
    "redis_invalidate": RedisInvalidateAction,
    "http": HttpAction,
    "rollback": RollbackAction,
    "wait_healthy": WaitHealthyAction,
}
# Steps that converge on the same end state however often they run; the others are never
# repeated after a crash, only reported.
IDEMPOTENT_ACTIONS = frozenset({"rollback", "wait_healthy", "redis_invalidate", "notify"})
STEP_COMMON_KEYS = ("timeout", "retries", "on_failure", "idempotent")


@dataclass(frozen=True, kw_only=True)
class Step(Strict):
    """One playbook step: exactly one action key (``notify``, ``rollback``, …) plus the common
    ``timeout``, ``retries``, ``on_failure`` and ``idempotent``."""

    action: str
    notify: NotifyAction | None = None
    exec: ExecAction | None = None
    command: CommandAction | None = None
    sql: SqlAction | None = None
    redis_invalidate: RedisInvalidateAction | None = None
    http: HttpAction | None = None
    rollback: RollbackAction | None = None
    wait_healthy: WaitHealthyAction | None = None
    timeout: Duration = 60.0
    retries: Annotated[int, Ge(0), Le(10)] | None = None
    on_failure: OnFailure = OnFailure.ABORT
    idempotent: bool | None = None

    @classmethod
    def _before(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(
                "expected a step like {notify: team} or {rollback: {}}, "
                f"one of: {', '.join(STEP_ACTIONS)}"
            )
        actions = [key for key in data if key in STEP_ACTIONS]
        unknown = [key for key in data if key not in STEP_ACTIONS and key not in STEP_COMMON_KEYS]
        if not actions and unknown:
            # Most likely a misspelt action: name it, as unknown keys elsewhere are named.
            # Only a config with an error needs difflib, and only the process that checks it.
            import difflib  # noqa: PLC0415

            close = difflib.get_close_matches(str(unknown[0]), list(STEP_ACTIONS), n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise ValueError(
                f'unknown step "{unknown[0]}"{hint}; a step is one of {", ".join(STEP_ACTIONS)}'
            )
        if len(actions) != 1:
            found = ", ".join(actions) if actions else "none"
            raise ValueError(
                f"a step needs exactly one action of {', '.join(STEP_ACTIONS)} (found {found})"
            )
        action = actions[0]
        converted = dict(data, action=action)
        if action == "notify" and isinstance(data[action], str):
            converted[action] = {"to": data[action]}
        if data[action] is None:
            converted[action] = {}
        return converted

    @property
    def spec(self) -> Strict:
        spec = getattr(self, self.action)
        assert spec is not None  # noqa: S101 - guaranteed by _before
        return spec  # type: ignore[no-any-return]

    @property
    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.action in IDEMPOTENT_ACTIONS

    @property
    def attempts(self) -> int:
        """Tries in all: idempotent steps retry twice by default, the others never."""
        retries = self.retries if self.retries is not None else (2 if self.is_idempotent else 0)
        return retries + 1
