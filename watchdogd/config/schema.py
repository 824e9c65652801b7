"""The shape of ``watchdogd.yaml`` as typed, validated objects.

Every model forbids unknown keys, so a typo is an error with a "did you mean", not a silently
ignored setting. Durations are stored in seconds and ratios as fractions (see ``units``).
Cross-field rules (a gate names an existing check, names are unique, …) live in ``rules``;
the playbook's steps in ``steps``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen

from watchdogd.config.base import Checked, Name, StatusList, Strict, Tagged, alias
from watchdogd.config.steps import Step
from watchdogd.config.target_refs import ComposeRef, ReleaseDir, SwarmRef
from watchdogd.config.traffic import TrafficConfig
from watchdogd.config.units import (
    ByteSize,
    Duration,
    Ratio,
    Threshold,
    UnitError,
    in_unit,
    parse_duration,
    parse_ratio,
)
from watchdogd.core.baseline import DEFAULT_CONFIDENCE as BASELINE_CONFIDENCE
from watchdogd.core.gates import GateMetric, GateSpec

# --- daemon-wide settings -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DockerSettings(Strict):
    host: str = "unix:///var/run/docker.sock"
    timeout: Duration = 10.0
    poll_interval: Duration = 5.0


@dataclass(frozen=True, kw_only=True)
class LogSettings(Strict):
    format: Literal["json", "console", "auto"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True, kw_only=True)
class ServerSettings(Strict):
    max_body: ByteSize = 1024 * 1024
    shutdown_timeout: Duration = 30.0
    #: From connect (or the previous response) to a request's complete headers.
    header_timeout: Duration = 10.0
    body_timeout: Duration = 30.0
    max_connections: Annotated[int, Ge(1), Le(100_000)] = 256
    #: Names the server answers to besides IP addresses, ``localhost`` and ``listen``'s host.
    hosts: list[Annotated[str, MinLen(1), MaxLen(253)]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Defaults(Strict):
    """Per-target settings a target inherits unless it sets its own."""

    window: Duration = 300.0
    bake_time: Duration = 300.0
    warmup: Duration = 0.0
    cooldown: Duration = 600.0
    max_rollbacks_per_hour: Annotated[int, Ge(0)] = 3
    dry_run: bool = False
    auto_rollback: bool = True
    history: Annotated[int, Ge(2), Le(1000)] = 20
    stop_timeout: Duration = 10.0


#: A notifier URL with one of these schemes is a plain JSON webhook, posted to over the
#: protocol given; any other scheme is Apprise's.
JSON_SCHEMES = {"json": "http", "jsons": "https"}


@dataclass(frozen=True, kw_only=True)
class Notifier(Strict):
    """A destination for messages: ``json://host/path`` (generic JSON webhook, ``jsons://`` for
    TLS) or any Apprise URL."""

    name: Name
    url: str
    timeout: Duration = 5.0


# --- targets: what is watched and rolled back -----------------------------------------------


class TargetKind(StrEnum):
    CONTAINER = "container"
    COMPOSE = "compose"
    SWARM = "swarm"
    RELEASE_DIR = "release_dir"


# --- checks: where samples come from --------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CheckBase(Strict):
    name: Name
    interval: Duration = 5.0
    timeout: Duration = 3.0


@dataclass(frozen=True, kw_only=True)
class ContainerHealthCheck(CheckBase):
    type: Literal["container_health"]


@dataclass(frozen=True, kw_only=True)
class HttpCheck(CheckBase):
    type: Literal["http"]
    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    json_body: Any = field(default=None, metadata=alias("json"))
    expect_status: StatusList = field(default_factory=lambda: [200])
    body_match: str | None = None
    tls_verify: bool = True


@dataclass(frozen=True, kw_only=True)
class AuthStep(Strict):
    name: Name
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    json_body: Any = field(default=None, metadata=alias("json"))
    expect_status: StatusList = field(default_factory=lambda: [200])
    extract: dict[Name, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AuthFlowCheck(CheckBase):
    type: Literal["auth_flow"]
    interval: Duration = 10.0
    timeout: Duration = 10.0
    tls_verify: bool = True
    steps: Annotated[list[AuthStep], MinLen(1)]


@dataclass(frozen=True, kw_only=True)
class ScrapeCheck(CheckBase):
    type: Literal["scrape"]
    url: str
    requests: str
    errors: str | None = None
    latency_histogram: str | None = None


@dataclass(frozen=True, kw_only=True)
class PromqlCheck(CheckBase):
    type: Literal["promql"]
    interval: Duration = 15.0
    url: str
    query: str


Check = Annotated[
    ContainerHealthCheck | HttpCheck | AuthFlowCheck | ScrapeCheck | PromqlCheck, Tagged("type")
]


# --- gates: when a check's window counts as bad ---------------------------------------------


_CORE = GateSpec(name="defaults", metric=GateMetric.ERROR_RATE, above=0.01)
RATE_METRICS = frozenset({GateMetric.ERROR_RATE, GateMetric.FAILURE_RATE})
LATENCY_METRICS = frozenset(
    {
        GateMetric.LATENCY_P50,
        GateMetric.LATENCY_P95,
        GateMetric.LATENCY_P99,
        GateMetric.LATENCY_MEAN,
        GateMetric.LATENCY_MAX,
    }
)


DEFAULT_FAILURE_RATE = 0.01
"""The failure gate every ``http`` check gets unless it has a rate gate of its own: 1 %, so
that hard down needs only three failed probes (``core.proportion.scan_run``)."""


@dataclass(frozen=True, kw_only=True)
class GateConfig(Strict):
    """``above``/``below`` take the metric's unit: a ratio for rates, a duration for latency, a
    plain number for PromQL values. ``unhealthy`` takes neither."""

    check: Name
    metric: GateMetric
    above: Threshold = None
    below: Threshold = None
    for_: Duration = field(default=0.0, metadata=alias("for"))
    # The core's defaults, tuned by benchmarks/decision_sim.py, are the config's defaults.
    min_samples: Annotated[int, Ge(1)] = _CORE.min_samples
    min_errors: Annotated[int, Ge(1)] = _CORE.min_errors
    # A baseline gate is tested again after every error on its sliding window, so its default
    # is stricter (``core.baseline.DEFAULT_CONFIDENCE``): ``_before`` writes it in when the
    # file does not.
    confidence: Annotated[float, Gt(0.5), Lt(1.0)] = _CORE.confidence
    consecutive_failures: Annotated[int, Ge(0)] = _CORE.consecutive_failures
    min_slow: Annotated[int, Ge(1)] = _CORE.min_slow
    max_staleness: Duration | None = None
    # Baseline gates (issue #15): judge green against blue over the same window. Validated
    # here and in rules; nothing evaluates them until blue-green targets exist.
    compare: Literal["absolute", "baseline"] = "absolute"
    tolerance: Ratio | None = None

    @classmethod
    def _before(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("compare") == "baseline" and "confidence" not in data:
            data = dict(data, confidence=BASELINE_CONFIDENCE)
        metric = data.get("metric")
        parser = (
            parse_ratio
            if metric in RATE_METRICS
            else parse_duration
            if metric in LATENCY_METRICS
            else None
        )
        if metric == GateMetric.UNHEALTHY:
            message = "an unhealthy gate takes no threshold; use for: to wait"
            return {
                k: UnitError(message) if k in ("above", "below") else v for k, v in data.items()
            }
        if parser is None:
            return data
        converted = dict(data)
        for key in ("above", "below"):
            if converted.get(key) is not None:
                converted[key] = in_unit(parser, converted[key])
        return converted

    @property
    def name(self) -> str:
        return f"{self.check}:{self.metric.value}"

    def spec(self) -> GateSpec:
        """The core's gate, with every setting of this one."""
        return GateSpec(
            name=self.name,
            metric=self.metric,
            above=self.above,
            below=self.below,
            for_=self.for_,
            min_samples=self.min_samples,
            confidence=self.confidence,
            min_errors=self.min_errors,
            consecutive_failures=self.consecutive_failures,
            min_slow=self.min_slow,
            max_staleness=self.max_staleness,
        )


@dataclass(frozen=True, kw_only=True)
class AlertRule(Strict):
    """Alertmanager alerts whose labels equal every pair in ``match`` trigger the playbook."""

    match: Annotated[dict[str, str], MinLen(1)]


@dataclass(frozen=True, kw_only=True)
class TargetConfig(Strict):
    name: Name
    kind: TargetKind | None = None
    container: str | None = None
    compose: ComposeRef | None = None
    swarm: SwarmRef | None = None
    release_dir: ReleaseDir | None = None
    window: Duration | None = None
    bake_time: Duration | None = None
    warmup: Duration | None = None
    cooldown: Duration | None = None
    max_rollbacks_per_hour: Annotated[int, Ge(0)] | None = None
    dry_run: bool | None = None
    auto_rollback: bool | None = None
    history: Annotated[int, Ge(2), Le(1000)] | None = None
    stop_timeout: Duration | None = None
    checks: list[Check] = field(default_factory=list)
    gates: list[GateConfig] = field(default_factory=list)
    alerts: list[AlertRule] = field(default_factory=list)
    playbook: list[Step] = field(default_factory=list)
    traffic: TrafficConfig | None = None

    @classmethod
    def _before(cls, data: Any) -> Any:
        return cls._gate_http_failures(cls._infer_kind(data))

    @staticmethod
    def _infer_kind(data: Any) -> Any:
        if isinstance(data, dict) and "kind" not in data:
            present = [kind.value for kind in TargetKind if kind.value in data]
            if len(present) == 1:
                return dict(data, kind=present[0])
        return data

    @staticmethod
    def _gate_http_failures(data: Any) -> Any:
        """Every ``http`` check gates its failures, so that a refused connection or a hang is
        caught by the check that sees it first, whatever the user gated: a check without a
        ``failure_rate`` or ``error_rate`` gate gets ``failure_rate above 1%`` (defaults)."""
        if not isinstance(data, dict):
            return data
        checks, gates = data.get("checks") or [], data.get("gates") or []
        if not isinstance(checks, list) or not isinstance(gates, list):
            return data  # the field validators report the real error
        rated = {
            g.get("check")
            for g in gates
            if isinstance(g, dict) and g.get("metric") in {m.value for m in RATE_METRICS}
        }
        implied = [
            {"check": c["name"], "metric": "failure_rate", "above": DEFAULT_FAILURE_RATE}
            for c in checks
            # A check without a name gets its error from the check's own validation.
            if isinstance(c, dict)
            and c.get("type") == "http"
            and isinstance(c.get("name"), str)
            and c["name"] not in rated
        ]
        return dict(data, gates=[*gates, *implied]) if implied else data

    def latency_thresholds(self, check: str) -> tuple[float, ...]:
        """The latency thresholds of ``check``'s gates (its window counts samples above each)."""
        return tuple(
            sorted(
                {
                    g.above
                    for g in self.gates
                    if g.check == check and g.metric in LATENCY_METRICS and g.above is not None
                }
            )
        )


def _host_and_port(value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'expected "host:port" like "127.0.0.1:9797", got {value!r}')
    return value


@dataclass(frozen=True, kw_only=True)
class Config(Strict):
    listen: Annotated[str, Checked(_host_and_port)] = "127.0.0.1:9797"
    api_token_file: Path | None = None
    api_token: str | None = None
    state_dir: Path = Path("/var/lib/watchdogd")
    docker: DockerSettings = field(default_factory=DockerSettings)
    log: LogSettings = field(default_factory=LogSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    defaults: Defaults = field(default_factory=Defaults)
    notify: list[Notifier] = field(default_factory=list)
    targets: list[TargetConfig] = field(default_factory=list)
    # Set by the loader, never written in the file (``init=False``), and out of equality so a
    # reload compares settings only. Values that came from ${ENV} expansion: the logger and
    # the API redact them.
    secrets: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    # ${VAR}s that were not set, loaded as placeholders (``check-config`` only).
    unset_variables: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def remember_secrets(self, values: frozenset[str]) -> None:
        object.__setattr__(self, "secrets", values)

    def remember_unset_variables(self, names: tuple[str, ...]) -> None:
        object.__setattr__(self, "unset_variables", names)

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def target(self, name: str) -> TargetConfig:
        for target in self.targets:
            if target.name == name:
                return target
        raise KeyError(name)
