"""A one-line description of a config, for ``check-config`` and the daemon's status."""

from __future__ import annotations

from watchdogd.config.schema import Config


def summarize(config: Config) -> str:
    """One line that says what a config watches, for ``check-config`` and the daemon's STATUS."""
    checks = sum(len(t.checks) for t in config.targets)
    gates = sum(len(t.gates) for t in config.targets)

    def plural(count: int, noun: str) -> str:
        return f"{count} {noun}{'' if count == 1 else 's'}"

    return ", ".join(
        [
            plural(len(config.targets), "target"),
            plural(checks, "check"),
            plural(gates, "gate"),
            plural(len(config.notify), "notifier"),
        ]
    )
