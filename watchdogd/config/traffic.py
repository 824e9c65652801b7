"""The ``traffic:`` section of a container or compose target: deploys through HAProxy.

With it, ``watchdogd deploy TARGET IMAGE`` runs a blue-green deploy (docs/blue-green.md): the
new release ("green") starts next to the running one ("blue"), is checked directly, then takes
the users' traffic through HAProxy's Runtime API and is judged on it with ``gates``. With
``strategy: canary`` (docs/canary.md) green takes the traffic in weight ``steps``, and gates
with ``compare: baseline`` judge it against blue on the same traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen

from watchdogd.config.base import Checked, Matches, Strict, alias
from watchdogd.config.units import (
    Duration,
    Ratio,
    Threshold,
    in_unit,
    parse_duration,
    parse_ratio,
)
from watchdogd.core.baseline import BASELINE_METRICS, BaselineSpec
from watchdogd.core.baseline import DEFAULT_CONFIDENCE as BASELINE_CONFIDENCE
from watchdogd.core.deploy_plan import Step
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
BackendName = Annotated[str, MinLen(1), MaxLen(64), Matches(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


@dataclass(frozen=True, kw_only=True)
class HAProxyRef(Strict):
    """Where watchdogd reaches HAProxy: its Runtime API socket (``stats socket ... level
    admin``), the backend the target's servers live in, and the socket its per-request log
    goes to (``log unix@PATH local0`` in HAProxy's ``global``)."""

    socket: Path
    backend: BackendName
    log_socket: Path | None = None
    timeout: Duration = 2.0


@dataclass(frozen=True, kw_only=True)
class Upstream(Strict):
    """How HAProxy reaches a release. ``published``: the container's port ``port`` published
    on ``host_address`` (HAProxy on the host); green gets a free host port from the engine.
    ``network``: the container's address on Docker network ``network`` (HAProxy in a
    container on that network)."""

    port: Annotated[int, Ge(1), Le(65535)]
    via: Literal["published", "network"] = "published"
    host_address: str = "127.0.0.1"
    network: str | None = None

    def __post_init__(self) -> None:
        if self.via == "network" and not self.network:
            raise ValueError('via: network needs "network:" (the Docker network HAProxy is on)')


@dataclass(frozen=True, kw_only=True)
class PreChecks(Strict):
    """Before any user request reaches green: it must be healthy (Docker) and every probe check
    of the target, pointed at green directly, must pass ``samples`` times in a row, each
    within ``max_latency``, before ``timeout``; ``samples`` failures in a row stop it early."""

    samples: Annotated[int, Ge(1), Le(1000)] = 5
    interval: Duration = 0.5
    max_latency: Duration = 1.0
    timeout: Duration = 60.0
    checks: list[str] | None = None


def _traffic_metric(value: GateMetric) -> GateMetric:
    allowed = TRAFFIC_RATE_METRICS | TRAFFIC_LATENCY_METRICS
    if value not in allowed:
        names = ", ".join(sorted(m.value for m in allowed))
        raise ValueError(f"user traffic gives {names}, not {value.value}")
    return value


@dataclass(frozen=True, kw_only=True)
class TrafficGate(Strict):
    """A gate on green's own user traffic, from HAProxy's per-request log: ``error_rate``
    (status >= 500 or no response) or a latency metric. Same statistics as target gates.
    With ``compare: baseline`` it takes no ``above``: it judges green against blue over the
    same window, ``tolerance`` being how much worse green may be (``core.baseline``)."""

    metric: Annotated[GateMetric, Checked(_traffic_metric)]
    above: Threshold = None
    compare: Literal["absolute", "baseline"] = "absolute"
    tolerance: Ratio | None = None
    for_: Duration = field(default=0.0, metadata=alias("for"))
    min_samples: Annotated[int, Ge(1)] = _CORE.min_samples
    min_errors: Annotated[int, Ge(1)] = _CORE.min_errors
    min_slow: Annotated[int, Ge(1)] = _CORE.min_slow
    # A baseline gate's default is the stricter one of ``core.baseline`` (it is looked at
    # every second, all day): ``_before`` writes it in when the file does not.
    confidence: Annotated[float, Gt(0.5), Lt(1.0)] = _CORE.confidence
    consecutive_failures: Annotated[int, Ge(0)] = _CORE.consecutive_failures

    @classmethod
    def _before(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("compare") == "baseline" and "confidence" not in data:
            data = dict(data, confidence=BASELINE_CONFIDENCE)
        if data.get("above") is None:
            return data
        parser = parse_ratio if data.get("metric") in TRAFFIC_RATE_METRICS else parse_duration
        return dict(data, above=in_unit(parser, data["above"]))

    def __post_init__(self) -> None:
        if self.compare == "absolute":
            if self.tolerance is not None:
                raise ValueError("tolerance is for compare: baseline gates")
            if self.above is None:
                raise ValueError('give "above" (a threshold), or compare: baseline')
            return
        if self.above is not None:
            raise ValueError("a baseline gate compares with blue, not a threshold: no above")
        if self.metric not in BASELINE_METRICS:
            names = ", ".join(sorted(m.value for m in BASELINE_METRICS))
            raise ValueError(f"compare: baseline takes {names}, not {self.metric.value}")

    @property
    def baseline(self) -> bool:
        return self.compare == "baseline"

    @property
    def name(self) -> str:
        suffix = ":baseline" if self.baseline else ""
        return f"{TRAFFIC_CHECK}:{self.metric.value}{suffix}"

    def baseline_spec(self) -> BaselineSpec:
        """The core's comparison."""
        return BaselineSpec(
            name=self.name,
            metric=self.metric,
            tolerance=self.tolerance,
            confidence=self.confidence,
            min_samples=self.min_samples,
            min_errors=self.min_errors,
        )

    def spec(self) -> GateSpec:
        assert self.above is not None  # noqa: S101 - a baseline gate has baseline_spec
        return GateSpec(
            name=self.name,
            metric=self.metric,
            above=self.above,
            for_=self.for_,
            min_samples=self.min_samples,
            confidence=self.confidence,
            min_errors=self.min_errors,
            min_slow=self.min_slow,
            consecutive_failures=self.consecutive_failures,
        )


DEFAULT_TRAFFIC_GATES = (TrafficGate(metric=GateMetric.ERROR_RATE, above=0.01),)


def _whole_percent(value: float) -> float:
    if not 0.01 <= value <= 1.0 or abs(value * 100 - round(value * 100)) > 1e-9:
        raise ValueError("a weight is a whole percentage from 1% to 100%")
    return value


@dataclass(frozen=True, kw_only=True)
class CanaryStep(Strict):
    """Green's share of the requests (``weight``, 1-100 %) for at least ``for``; the step
    ends when every gate of green is ``ok`` with enough evidence (docs/canary.md)."""

    weight: Annotated[Ratio, Checked(_whole_percent)]
    for_: Duration = field(metadata=alias("for"))

    @property
    def percent(self) -> int:
        return round(self.weight * 100)


def _whole_seconds(value: float) -> float:
    if value < 60 or value > 6 * 3600 or value != int(value):
        raise ValueError("a traffic window is whole seconds from 1m to 6h")
    return value


@dataclass(frozen=True, kw_only=True)
class TrafficConfig(Strict):
    haproxy: HAProxyRef
    strategy: Literal["blue_green", "canary"] = "blue_green"
    # Canary only: green's weight steps, each held at least its ``for``; after the last one
    # green is promoted (all traffic, blue retired).
    steps: list[CanaryStep] | None = None
    upstream: Upstream
    pre_checks: PreChecks = field(default_factory=PreChecks)
    gates: list[TrafficGate] = field(default_factory=lambda: list(DEFAULT_TRAFFIC_GATES))
    # How long green bakes on user traffic; the target's bake_time when not set.
    bake_time: Duration | None = None
    # Green must have served this many user requests before it can be promoted: a bake that
    # saw no traffic judged nothing.
    min_requests: Annotated[int, Ge(0)] = 20
    # Green's and blue's windows of user traffic: empty at each step's start, sliding over
    # this span. Long, so that a step at a low request rate can gather the evidence its gates
    # need (a p95 baseline needs 200 of blue's requests); the gates' 60 s sub-window test
    # keeps a fresh regression from being diluted.
    window: Annotated[Duration, Checked(_whole_seconds)] = 1800.0
    drain_timeout: Duration = 10.0
    switch_attempts: Annotated[int, Ge(1), Le(20)] = 5

    def __post_init__(self) -> None:
        if self.strategy == "blue_green":
            if self.steps is not None:
                raise ValueError("steps are for strategy: canary")
            if any(gate.baseline for gate in self.gates):
                raise ValueError(
                    "compare: baseline gates need strategy: canary (blue serving beside green)"
                )
            return
        if not self.steps:
            raise ValueError(
                "strategy: canary needs steps, e.g. [{weight: 5%, for: 2m}, {weight: 50%, for: 5m}]"
            )
        weights = [step.percent for step in self.steps]
        if weights != sorted(set(weights)):
            raise ValueError(f"canary weights must rise step by step, got {weights}")

    @property
    def latency_thresholds(self) -> tuple[float, ...]:
        """The absolute latency gates' thresholds, which green's window must count."""
        return tuple(
            sorted(
                {
                    gate.above
                    for gate in self.gates
                    if gate.above is not None and gate.metric in TRAFFIC_LATENCY_METRICS
                }
            )
        )

    def plan(self, bake_time: float) -> list[Step]:
        """Green's steps: a blue-green deploy is one step at 100 % for ``bake_time``."""
        if self.steps is None:
            return [Step(100, bake_time)]
        return [Step(step.percent, step.for_) for step in self.steps]
