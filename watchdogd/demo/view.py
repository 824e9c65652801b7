"""What the demo shows: a live view on a terminal, plain lines elsewhere, a summary at the end.

Both views take the same :class:`Snapshot`s, polled from watchdogd's own API (the target's
status and the audit log), so what the demo shows is what ``watchdogd status`` and
``watchdogd history`` would show. The live view redraws one block in place with ANSI escapes;
lines are cut to the terminal's width so that none wraps and the redraw stays in place.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from watchdogd.demo.traffic import TrafficSummary

NOTES_SHOWN = 6
_MARKS = {"step_succeeded": "✓", "step_failed": "✗", "incident_started": "!", "step_retry": "↻"}


@dataclass
class Snapshot:
    elapsed: float
    status: dict[str, Any] | None  # GET /api/v1/targets/<name>, or None before it answers
    events: list[dict[str, Any]]  # audit events new since the previous snapshot, oldest first
    traffic: TrafficSummary


class Reporter(Protocol):
    def note(self, elapsed: float, text: str) -> None:
        """A step of the story told by the demo itself."""

    def show(self, snapshot: Snapshot) -> None: ...

    def close(self) -> None: ...


def _label(release: dict[str, Any] | None) -> str:
    if not release:
        return "-"
    return str(release.get("image_ref") or release.get("image") or "-")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1.0 else f"{value:.2g} s"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _gate_value(gate: dict[str, Any], value: float | None) -> str:
    if value is None:
        return "-"
    return _seconds(value) if "latency" in gate["gate"] else _percent(value)


class PlainReporter:
    """One line per change, for logs, CI and pipes."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self._state: str | None = None
        self._verdicts: dict[str, str] = {}

    def _line(self, elapsed: float, text: str) -> None:
        print(f"[{elapsed:5.1f}s] {text}", file=self._out, flush=True)

    def note(self, elapsed: float, text: str) -> None:
        self._line(elapsed, text)

    def show(self, snapshot: Snapshot) -> None:
        status = snapshot.status
        if status is not None:
            if status["state"] != self._state:
                current = _label(status.get("current_release"))
                self._line(snapshot.elapsed, f"watchdogd: app is {status['state']} ({current})")
                self._state = status["state"]
            for gate in status["gates"]:
                before = self._verdicts.get(gate["gate"])
                self._verdicts[gate["gate"]] = gate["verdict"]
                if gate["verdict"] == "breached" and before != "breached":
                    self._line(snapshot.elapsed, f"gate {gate['gate']} breached: {gate['reason']}")
        for event in snapshot.events:
            self._line(snapshot.elapsed, f"audit: {event['kind']}: {event['message']}")

    def close(self) -> None:
        pass


@dataclass
class LiveReporter:
    """A block redrawn in place: the story so far, checks, gates, users, the incident."""

    title: str
    out: TextIO = field(default_factory=lambda: sys.stdout)
    _notes: list[str] = field(default_factory=list)
    _steps: list[str] = field(default_factory=list)
    _drawn: int = 0
    _last: Snapshot | None = None

    def note(self, elapsed: float, text: str) -> None:
        self._notes.append(f"{elapsed:5.1f}s  {text}")
        if self._last is not None:
            self._draw(self._last)

    def show(self, snapshot: Snapshot) -> None:
        for event in snapshot.events:
            if event.get("incident_id"):
                mark = _MARKS.get(event["kind"], "·")
                self._steps.append(f"{mark} {event['message']}")
        self._last = snapshot
        self._draw(snapshot)

    def close(self) -> None:
        self._drawn = 0  # leave the last picture on screen; the summary follows it

    def _draw(self, snapshot: Snapshot) -> None:
        width = max(40, shutil.get_terminal_size((100, 40)).columns - 1)
        lines = [line[:width] for line in self.render(snapshot)]
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self.out.write(up + "\x1b[J" + "\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)

    def render(self, snapshot: Snapshot) -> list[str]:
        lines = [f"{self.title}   {snapshot.elapsed:5.1f} s", ""]
        lines += self._notes[-NOTES_SHOWN:]
        status = snapshot.status
        if status is not None:
            lines += [
                "",
                f"target app: {status['state'].upper()}   current "
                f"{_label(status.get('current_release'))}   known-good "
                f"{_label(status.get('known_good_release'))}",
                "",
                f"  {'check':<10}{'samples':>8}{'errors':>8}{'error %':>9}{'p95':>9}  source",
            ]
            for check in status["checks"]:
                lines.append(
                    f"  {check['name']:<10}{check['requests']:>8}{check['errors']:>8}"
                    f"{_percent(check['error_ratio']):>9}"
                    f"{_seconds(check['latency_seconds']['p95']):>9}  "
                    f"{'up' if check['source_up'] else 'DOWN: ' + check['last_detail']}"
                )
            lines += ["", f"  {'gate':<22}{'verdict':<10}{'value':>8}{'limit':>8}  why"]
            for gate in status["gates"]:
                verdict = (
                    gate["verdict"].upper() if gate["verdict"] == "breached" else gate["verdict"]
                )
                lines.append(
                    f"  {gate['gate']:<22}{verdict:<10}{_gate_value(gate, gate['value']):>8}"
                    f"{_gate_value(gate, gate['threshold']):>8}  {gate['reason']}"
                )
        lines += ["", f"users (last 5 s): {snapshot.traffic.describe()}"]
        if self._steps:
            lines += ["", "incident:"] + [f"  {step}" for step in self._steps[-8:]]
        return lines


def make_reporter(title: str, plain: bool, out: TextIO | None = None) -> Reporter:
    stream = out or sys.stdout
    if plain or not stream.isatty() or os.environ.get("TERM") == "dumb":
        return PlainReporter(stream)
    return LiveReporter(title, stream)
