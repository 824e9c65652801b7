"""The seam between a target's controller and a copy of its state kept outside this host.

The local store stays the working copy. A mirror keeps known-good releases, quarantine and
the incident journal where they survive the loss of the node (for a Swarm service: in the
swarm, see ``watchdogd.watch.swarm_state``), and it is where watchdogd instances that watch the
same target agree on who handles an incident. Only ``claim`` may say no; the other calls log
their own failures and never raise, except ``before_step`` when the claim was lost.
"""

from __future__ import annotations

from typing import Protocol

from watchdogd.config.steps import Step
from watchdogd.model import Release
from watchdogd.playbook.plan import IncidentPlan


class StateMirror(Protocol):
    async def restore(self) -> None:
        """At start: fill an empty local store from the mirror, and take over (or give up)
        the incidents a previous instance left running. Before any decision is made."""

    async def known_good(self, release: Release) -> None:
        """``release`` passed its bake time."""

    async def claim(self, plan: IncidentPlan, *, manual: bool) -> str | None:
        """Take the incident before anything acts. ``None``: ours to run; otherwise the reason
        it is not (another instance handles it, the target changed already, ...)."""

    async def before_step(self, index: int, step: Step) -> None:
        """A step of the claimed incident is about to act (its ``started`` row is committed):
        copy the journal. Raises ``ClaimLost`` when another instance has taken the incident."""

    async def finished(self, plan: IncidentPlan, *, succeeded: bool, detail: str) -> None:
        """The claimed incident ended; on success its bad release is quarantined."""
