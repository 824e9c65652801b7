"""Helpers for the state store tests (a module of its own: conftest is not for importing)."""

from __future__ import annotations

from watchdogd.model import Release


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def release(version: str, target: str = "api", config: str = "cfg") -> Release:
    """A release of ``target`` running image ``sha256:<version>``."""
    return Release(
        target=target,
        image=f"sha256:{version}",
        config_hash=config,
        image_ref=f"registry.local/api:{version}",
        spec={"Config": {"Env": [f"VERSION={version}"]}},
    )
