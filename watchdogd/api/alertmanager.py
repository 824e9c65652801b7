"""The Alertmanager webhook payload (version "4") and how alerts map to targets.

Unknown keys are ignored, because newer Alertmanager releases add fields (``routeLabels``,
``notification_reason``) under the same version. An alert's identity is its fingerprint plus
``startsAt``: Alertmanager retries, repeats and HA peers resend the same alert, and one alert
must cause one rollback.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


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


MAX_ALERTS = 10_000
#: Alerts validated between two yields to the event loop: 10 000 at once take ~50 ms.
SLICE = 500


class _Envelope(_Lenient):
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_key: str = Field(default="", alias="groupKey")
    alerts: list[Any] = Field(max_length=MAX_ALERTS)


_ALERTS = TypeAdapter(list[Alert])


class PayloadError(ValueError):
    """Not a version 4 payload; the message names the first wrong field."""


def _first_error(err: ValidationError, start: int | None = None) -> PayloadError:
    """The first problem, located in the whole payload (``start``: the slice's offset)."""
    first = err.errors()[0]
    loc: list[str | int] = list(first["loc"])
    if start is not None:
        if loc and isinstance(loc[0], int):
            loc[0] += start
        loc.insert(0, "alerts")
    return PayloadError(f"{'.'.join(str(p) for p in loc)}: {first['msg']}")


async def validate_payload(body: Any) -> WebhookPayload:
    """``WebhookPayload.model_validate(body)``, with the alerts validated in slices and the
    event loop free in between. Raises ``PayloadError``."""
    try:
        envelope = _Envelope.model_validate(body)
    except ValidationError as err:
        raise _first_error(err) from None
    alerts: list[Alert] = []
    raw = envelope.alerts
    for start in range(0, len(raw), SLICE):
        try:
            alerts += _ALERTS.validate_python(raw[start : start + SLICE])
        except ValidationError as err:
            raise _first_error(err, start) from None
        if start + SLICE < len(raw):
            await asyncio.sleep(0)
    return WebhookPayload.model_construct(
        version=envelope.version,
        status=envelope.status,
        receiver=envelope.receiver,
        group_key=envelope.group_key,
        alerts=alerts,
    )
