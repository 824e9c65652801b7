"""The picture of a target that ``/metrics`` and the API read (``metrics.target_text``'s
``TargetView`` protocol): plain values, built by ``TargetController.view``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from watchdogd.core.gates import GateResult, Verdict
from watchdogd.model import Release
from watchdogd.watch.recorder import CheckRecorder, CheckView

__all__ = ["CheckView", "GateView", "TargetView", "container_health", "target_view"]


@dataclass
class GateView:
    gate: str
    breached: bool
    verdict: str
    result: GateResult


@dataclass
class TargetView:
    target: str
    state: str
    container_healthy: bool | None
    releases: list[tuple[str, str]]
    checks: list[CheckView] = field(default_factory=list)
    gates: list[GateView] = field(default_factory=list)


def target_view(
    target: str,
    state: str,
    *,
    current: Release | None,
    catalogue: Sequence[tuple[str, str]],
    recorders: Mapping[str, CheckRecorder],
    results: Sequence[GateResult],
    now: float,
    recent: bool = False,
) -> TargetView:
    """The view of one target at ``now``; ``recent`` lets window stats up to a second old
    stand in (see ``CheckRecorder.view``)."""
    releases = list(catalogue)
    if current is not None:
        releases.insert(0, (current.label, "current"))
    return TargetView(
        target=target,
        state=state,
        container_healthy=container_health(recorders, now),
        releases=releases,
        checks=[r.view(now, recent=recent) for r in recorders.values()],
        gates=[GateView(r.gate, r.verdict is Verdict.BREACHED, str(r.verdict), r) for r in results],
    )


def container_health(recorders: Mapping[str, CheckRecorder], now: float) -> bool | None:
    """What the ``container_health`` checks saw last since the release changed (all must be
    healthy); None before their first sample. Exported as ``watchdogd_container_healthy``."""
    seen = [
        recorder.stats(now).last_ok
        for recorder in recorders.values()
        if recorder.check_type == "container_health" and recorder.samples_since_reset
    ]
    known = [ok for ok in seen if ok is not None]
    return all(known) if known else None


def gate_numbers(result: GateResult) -> dict[str, float | int | str | None]:
    """A gate's numbers, as the audit log and notifications carry them."""
    return {
        "gate": result.gate,
        "value": result.value,
        "threshold": result.threshold,
        "samples": result.samples,
    }
