"""The playbook: an incident's steps, run in order, exactly once, journaled in the store.

``PlaybookRunner.run(IncidentPlan)`` runs a new incident or resumes a stored one; see
``runner`` for the journal rules and ``notify`` for the notification payload.
"""

from watchdogd.playbook.context import HealthCheck
from watchdogd.playbook.plan import DEFAULT_STOP_TIMEOUT, IncidentOutcome, IncidentPlan, StepResult
from watchdogd.playbook.runner import BeforeStep, PlaybookRunner

__all__ = [
    "DEFAULT_STOP_TIMEOUT",
    "BeforeStep",
    "HealthCheck",
    "IncidentOutcome",
    "IncidentPlan",
    "PlaybookRunner",
    "StepResult",
]
