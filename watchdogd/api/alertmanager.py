"""The Alertmanager webhook payload (version "4") and how alerts map to targets.

Unknown keys are ignored, because newer Alertmanager releases add fields (``routeLabels``,
``notification_reason``) under the same version. An alert's identity is its fingerprint plus
``startsAt``: Alertmanager retries, repeats and HA peers resend the same alert, and one alert
must cause one rollback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from watchdogd.config.schema import AlertRule


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Alert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=128)

    @property
    def key(self) -> tuple[str, str]:
        """Identity for de-duplication: one alert episode, however often it is sent and
        whatever UTC offset its sender wrote the instant with."""
        starts = self.starts_at
        if starts.tzinfo is None:
            starts = starts.replace(tzinfo=UTC)  # Alertmanager always sends an offset
        with contextlib.suppress(OverflowError):  # year 1 with a positive offset: keep it
            starts = starts.astimezone(UTC)
        return self.fingerprint, starts.isoformat()

    @property
    def name(self) -> str:
        return self.labels.get("alertname", self.fingerprint)


class WebhookPayload(_Lenient):
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_key: str = Field(default="", alias="groupKey")
    alerts: list[Alert] = Field(max_length=10_000)


def matches(rule: AlertRule, labels: Mapping[str, str]) -> bool:
    """An alert matches a rule when it carries every label pair the rule names."""
    return all(labels.get(key) == value for key, value in rule.match.items())
