"""The demo's last word: what went wrong, how fast watchdogd saw it and put it right, and
where to read the record. Built from the audit log, not from the demo's own guesses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdogd.demo.release import FAULT_DESCRIPTIONS
from watchdogd.demo.traffic import TrafficSummary


@dataclass
class DemoResult:
    fault: str
    stage: str
    deployed_at: float | None = None  # wall clock
    started: dict[str, Any] | None = None  # the incident_started audit event
    finished: dict[str, Any] | None = None  # the incident_finished audit event
    restored: bool = False
    restored_detail: str = ""
    problem: str = ""  # why the demo failed, when it did
    users: TrafficSummary | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def rolled_back(self) -> bool:
        succeeded = self.finished is not None and self.finished["data"].get("state") == "succeeded"
        return succeeded and self.restored and not self.problem

    @property
    def gate(self) -> str | None:
        if self.started is None:
            return None
        data = self.started["data"]
        return str(data.get("trigger_name")) if data.get("trigger_kind") == "gate" else None

    def seconds_after_deploy(self, event: dict[str, Any] | None) -> float | None:
        if event is None or self.deployed_at is None:
            return None
        return float(event["at"]) - self.deployed_at


def _reason(started: dict[str, Any]) -> str:
    # "playbook started for app: <reason>; v2 -> v1": the reason holds the gate's numbers.
    message = str(started["message"])
    head, _, rest = message.partition(": ")
    return rest.rsplit("; ", 1)[0] if head.startswith(("playbook started", "dry run")) else message


def summary_lines(result: DemoResult) -> list[str]:
    verdict = (
        "watchdogd rolled the bad release back."
        if result.rolled_back
        else f"The demo did not end in a rollback: {result.problem or result.restored_detail}"
    )
    fault = FAULT_DESCRIPTIONS[result.fault]
    lines = ["", verdict, f"  {'fault':<13}{result.fault}: {fault}"]
    detected = result.seconds_after_deploy(result.started)
    if result.started is not None and detected is not None:
        by = f"gate {result.gate}" if result.gate else result.started["data"].get("trigger_kind")
        lines.append(f"  {'detected':<13}{detected:.1f} s after the deploy, by {by}:")
        lines.append(f"  {'':<13}{_reason(result.started)}")
    restored = result.seconds_after_deploy(result.finished)
    if result.finished is not None and restored is not None:
        data = result.finished["data"]
        lines.append(
            f"  {'restored':<13}{restored:.1f} s after the deploy "
            f"(the playbook {data.get('state')} in {float(data.get('duration_seconds', 0)):.1f} s):"
        )
        lines.extend(
            f"  {'':<13}{step['index'] + 1}. {step['action']} {step['status']}: "
            f"{str(step['detail']).splitlines()[0] if step['detail'] else ''}"
            for step in data.get("steps", [])
        )
    if result.restored_detail:
        lines.append(f"  {'now':<13}{result.restored_detail}")
    if result.users is not None and result.users.requests:
        users = result.users
        lines.append(
            f"  {'users':<13}{users.failed} of {users.requests} requests failed between the "
            f"deploy and the restore"
            + (f" (p95 {users.p95:.2f} s)" if users.p95 is not None and users.p95 >= 1 else "")
        )
    files = result.files
    if "audit_db" in files:
        lines.append(f"  {'audit log':<13}{files['audit_db']} (SQLite)")
    if "audit_jsonl" in files:
        lines.append(f"  {'':<13}{files['audit_jsonl']} (the same events as JSON lines)")
    for key, label in (("config", "config"), ("daemon_log", "daemon log"), ("app_log", "app log")):
        if key in files:
            lines.append(f"  {label:<13}{files[key]}")
    return lines
