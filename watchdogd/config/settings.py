"""A target's settings resolved once: its own value where it sets one, else ``defaults``.

Read as typed attributes (``settings.bake_time``), never by name, so a misspelt setting is a
type error and not a silent ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdogd.config.schema import Defaults, TargetConfig
from watchdogd.config.steps import RollbackAction, Step, WaitHealthyAction

__all__ = ["DEFAULT_PLAYBOOK", "TargetSettings", "resolve"]

#: A target without a playbook of its own gets this one.
DEFAULT_PLAYBOOK = (
    Step(action="rollback", rollback=RollbackAction()),
    Step(action="wait_healthy", wait_healthy=WaitHealthyAction()),
)


@dataclass(frozen=True)
class TargetSettings:
    """Every per-target setting of ``defaults``, in seconds where it is a duration, and the
    playbook."""

    window: float
    bake_time: float
    warmup: float
    cooldown: float
    max_rollbacks_per_hour: int
    dry_run: bool
    auto_rollback: bool
    history: int
    stop_timeout: float
    playbook: tuple[Step, ...]


def resolve(target: TargetConfig, defaults: Defaults) -> TargetSettings:
    """``target``'s settings, each inherited from ``defaults`` unless the target sets it."""
    return TargetSettings(
        window=float(defaults.window if target.window is None else target.window),
        bake_time=float(defaults.bake_time if target.bake_time is None else target.bake_time),
        warmup=float(defaults.warmup if target.warmup is None else target.warmup),
        cooldown=float(defaults.cooldown if target.cooldown is None else target.cooldown),
        max_rollbacks_per_hour=(
            defaults.max_rollbacks_per_hour
            if target.max_rollbacks_per_hour is None
            else target.max_rollbacks_per_hour
        ),
        dry_run=defaults.dry_run if target.dry_run is None else target.dry_run,
        auto_rollback=(
            defaults.auto_rollback if target.auto_rollback is None else target.auto_rollback
        ),
        history=defaults.history if target.history is None else target.history,
        stop_timeout=float(
            defaults.stop_timeout if target.stop_timeout is None else target.stop_timeout
        ),
        playbook=tuple(target.playbook) or DEFAULT_PLAYBOOK,
    )
