"""The ``traffic:`` section of a container or compose target: deploys through HAProxy.

With it, ``watchdogd deploy TARGET IMAGE`` runs a blue-green deploy (docs/blue-green.md): the
new release ("green") starts next to the running one ("blue"), is checked directly, then takes
the users' traffic through HAProxy's Runtime API and is judged on it with ``gates``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from watchdogd.config.units import Duration, parse_duration, parse_ratio
from watchdogd.core.gates import GateMetric, GateSpec

_CORE = GateSpec(name="defaults", metric=GateMetric.ERROR_RATE, above=0.01)
# What HAProxy's per-request log gives per release: outcomes (status >= 500 is an error) and
# response times. No health state, no PromQL value.
TRAFFIC_RATE_METRICS = frozenset({GateMetric.ERROR_RATE, GateMetric.FAILURE_RATE})
TRAFFIC_LATENCY_METRICS = frozenset(
    {
        GateMetric.LATENCY_P50,
        GateMetric.LATENCY_P95,
        GateMetric.LATENCY_P99,
        GateMetric.LATENCY_MEAN,
        GateMetric.LATENCY_MAX,
    }
)
TRAFFIC_CHECK = "traffic"
BackendName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HAProxyRef(_Strict):
    """Where watchdogd reaches HAProxy: its Runtime API socket (``stats socket ... level
    admin``), the backend the target's servers live in, and the socket its per-request log
    goes to (``log unix@PATH local0`` in HAProxy's ``global``)."""

    socket: Path
    backend: BackendName
    log_socket: Path | None = None
    timeout: Duration = 2.0


class Upstream(_Strict):
    """How HAProxy reaches a release. ``published``: the container's port ``port`` published
    on ``host_address`` (HAProxy on the host); green gets a free host port from the engine.
    ``network``: the container's address on Docker network ``network`` (HAProxy in a
    container on that network)."""

    port: Annotated[int, Field(ge=1, le=65535)]
    via: Literal["published", "network"] = "published"
    host_address: str = "127.0.0.1"
    network: str | None = None

    @model_validator(mode="after")
    def _network_named(self) -> Upstream:
        if self.via == "network" and not self.network:
            raise ValueError('via: network needs "network:" (the Docker network HAProxy is on)')
        return self


class PreChecks(_Strict):
    """Before any user request reaches green: it must be healthy (Docker) and every probe check
    of the target, pointed at green directly, must pass ``samples`` times in a row, each
    within ``max_latency``, before ``timeout``; ``samples`` failures in a row stop it early."""

    samples: Annotated[int, Field(ge=1, le=1000)] = 5
    interval: Duration = 0.5
    max_latency: Duration = 1.0
    timeout: Duration = 60.0
    checks: list[str] | None = None


class TrafficGate(_Strict):
    """A gate on green's own user traffic, from HAProxy's per-request log: ``error_rate``
    (status >= 500 or no response) or a latency metric. Same statistics as target gates."""

    metric: GateMetric
    above: float
    for_: Duration = Field(default=0.0, alias="for")
    min_samples: Annotated[int, Field(ge=1)] = _CORE.min_samples
    min_errors: Annotated[int, Field(ge=1)] = _CORE.min_errors
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = _CORE.confidence
    consecutive_failures: Annotated[int, Field(ge=0)] = _CORE.consecutive_failures

    @model_validator(mode="before")
    @classmethod
    def _threshold_in_metric_units(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("above") is None:
            return data
        metric = data.get("metric")
        parser = parse_ratio if metric in TRAFFIC_RATE_METRICS else parse_duration
        try:
            return dict(data, above=parser(data["above"]))
        except ValueError as err:
            return dict(data, above=_Invalid(str(err)))

    @field_validator("above", mode="wrap")
    @classmethod
    def _report_unit_error(cls, value: Any, handler: Any) -> Any:
        if isinstance(value, _Invalid):
            raise ValueError(value.message)
        return handler(value)

    @field_validator("metric")
    @classmethod
    def _traffic_metric(cls, value: GateMetric) -> GateMetric:
        allowed = TRAFFIC_RATE_METRICS | TRAFFIC_LATENCY_METRICS
        if value not in allowed:
            names = ", ".join(sorted(m.value for m in allowed))
            raise ValueError(f"user traffic gives {names}, not {value.value}")
        return value

    @property
    def name(self) -> str:
        return f"{TRAFFIC_CHECK}:{self.metric.value}"

    def spec(self) -> GateSpec:
        return GateSpec(
            name=self.name,
            metric=self.metric,
            above=self.above,
            for_=self.for_,
            min_samples=self.min_samples,
            confidence=self.confidence,
            min_errors=self.min_errors,
            consecutive_failures=self.consecutive_failures,
        )


class _Invalid:
    def __init__(self, message: str) -> None:
        self.message = message


DEFAULT_TRAFFIC_GATES = (TrafficGate(metric=GateMetric.ERROR_RATE, above=0.01),)


class TrafficConfig(_Strict):
    haproxy: HAProxyRef
    strategy: Literal["blue_green"] = "blue_green"
    upstream: Upstream
    pre_checks: PreChecks = PreChecks()
    gates: list[TrafficGate] = list(DEFAULT_TRAFFIC_GATES)
    # How long green bakes on user traffic; the target's bake_time when not set.
    bake_time: Duration | None = None
    # Green must have served this many user requests before it can be promoted: a bake that
    # saw no traffic judged nothing.
    min_requests: Annotated[int, Field(ge=0)] = 20
    drain_timeout: Duration = 10.0
    switch_attempts: Annotated[int, Field(ge=1, le=20)] = 5
