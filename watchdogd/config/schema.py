"""The shape of ``watchdogd.yaml`` as typed, validated objects.

Every model forbids unknown keys, so a typo is an error with a "did you mean", not a silently
ignored setting. Durations are stored in seconds and ratios as fractions (see ``units``).
Cross-field rules (a gate names an existing check, names are unique, …) live in ``rules``;
the playbook's steps in ``steps``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from watchdogd.config.base import Name, StatusList, Strict
from watchdogd.config.steps import Step
from watchdogd.config.target_refs import ComposeRef, ReleaseDir, SwarmRef
from watchdogd.config.traffic import TrafficConfig
from watchdogd.config.units import ByteSize, Duration, Ratio, parse_duration, parse_ratio
from watchdogd.core.baseline import DEFAULT_CONFIDENCE as BASELINE_CONFIDENCE
from watchdogd.core.gates import GateMetric, GateSpec

# --- daemon-wide settings -------------------------------------------------------------------


class DockerSettings(Strict):
    host: str = "unix:///var/run/docker.sock"
    timeout: Duration = 10.0
    poll_interval: Duration = 5.0


class LogSettings(Strict):
    format: Literal["json", "console", "auto"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class ServerSettings(Strict):
    max_body: ByteSize = 1024 * 1024
    shutdown_timeout: Duration = 30.0
    #: From connect (or the previous response) to a request's complete headers.
    header_timeout: Duration = 10.0
    body_timeout: Duration = 30.0
    max_connections: Annotated[int, Field(ge=1, le=100_000)] = 256
    #: Names the server answers to besides IP addresses, ``localhost`` and ``listen``'s host.
    hosts: list[Annotated[str, Field(min_length=1, max_length=253)]] = []


class Defaults(Strict):
    """Per-target settings a target inherits unless it sets its own."""

    window: Duration = 300.0
    bake_time: Duration = 300.0
    warmup: Duration = 0.0
    cooldown: Duration = 600.0
    max_rollbacks_per_hour: Annotated[int, Field(ge=0)] = 3
    dry_run: bool = False
    auto_rollback: bool = True
    history: Annotated[int, Field(ge=2, le=1000)] = 20
    stop_timeout: Duration = 10.0


#: A notifier URL with one of these schemes is a plain JSON webhook, posted to over the
#: protocol given; any other scheme is Apprise's.
JSON_SCHEMES = {"json": "http", "jsons": "https"}


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


class CheckBase(Strict):
    name: Name
    interval: Duration = 5.0
    timeout: Duration = 3.0


class ContainerHealthCheck(CheckBase):
    type: Literal["container_health"]


class HttpCheck(CheckBase):
    type: Literal["http"]
    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = {}
    body: str | None = None
    json_body: Any = Field(default=None, alias="json")
    expect_status: StatusList = [200]
    body_match: str | None = None
    tls_verify: bool = True


class AuthStep(Strict):
    name: Name
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: str
    headers: dict[str, str] = {}
    body: str | None = None
    json_body: Any = Field(default=None, alias="json")
    expect_status: StatusList = [200]
    extract: dict[Name, str] = {}


class AuthFlowCheck(CheckBase):
    type: Literal["auth_flow"]
    interval: Duration = 10.0
    timeout: Duration = 10.0
    tls_verify: bool = True
    steps: Annotated[list[AuthStep], Field(min_length=1)]


class ScrapeCheck(CheckBase):
    type: Literal["scrape"]
    url: str
    requests: str
    errors: str | None = None
    latency_histogram: str | None = None


class PromqlCheck(CheckBase):
    type: Literal["promql"]
    interval: Duration = 15.0
    url: str
    query: str


Check = Annotated[
    ContainerHealthCheck | HttpCheck | AuthFlowCheck | ScrapeCheck | PromqlCheck,
    Field(discriminator="type"),
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


class GateConfig(Strict):
    """``above``/``below`` take the metric's unit: a ratio for rates, a duration for latency, a
    plain number for PromQL values. ``unhealthy`` takes neither."""

    check: Name
    metric: GateMetric
    above: float | None = None
    below: float | None = None
    for_: Duration = Field(default=0.0, alias="for")
    # The core's defaults, tuned by benchmarks/decision_sim.py, are the config's defaults.
    min_samples: Annotated[int, Field(ge=1)] = _CORE.min_samples
    min_errors: Annotated[int, Field(ge=1)] = _CORE.min_errors
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = _CORE.confidence
    consecutive_failures: Annotated[int, Field(ge=0)] = _CORE.consecutive_failures
    min_slow: Annotated[int, Field(ge=1)] = _CORE.min_slow
    max_staleness: Duration | None = None
    # Baseline gates (issue #15): judge green against blue over the same window. Validated
    # here and in rules; nothing evaluates them until blue-green targets exist.
    compare: Literal["absolute", "baseline"] = "absolute"
    tolerance: Ratio | None = None

    @model_validator(mode="before")
    @classmethod
    def _thresholds_in_metric_units(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
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
            return {k: _Invalid(message) if k in ("above", "below") else v for k, v in data.items()}
        if parser is None:
            return data
        converted = dict(data)
        for key in ("above", "below"):
            if converted.get(key) is not None:
                try:
                    converted[key] = parser(converted[key])
                except ValueError as err:
                    # Re-raised per field below, so the error names ``above``, not the gate.
                    converted[key] = _Invalid(str(err))
        return converted

    @field_validator("above", "below", mode="wrap")
    @classmethod
    def _report_unit_errors(cls, value: Any, handler: Any) -> Any:
        if isinstance(value, _Invalid):
            raise ValueError(value.message)
        return handler(value)

    @property
    def name(self) -> str:
        return f"{self.check}:{self.metric.value}"

    @property
    def effective_confidence(self) -> float:
        """``confidence`` as written, else the default of the gate's kind: a baseline gate is
        tested again after every error on its sliding window, so its default is stricter
        (``core.baseline.DEFAULT_CONFIDENCE``)."""
        if self.compare == "baseline" and "confidence" not in self.model_fields_set:
            return BASELINE_CONFIDENCE
        return self.confidence

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


class _Invalid:
    """A threshold that failed its unit parser; carried to the field validator for the message."""

    def __init__(self, message: str) -> None:
        self.message = message


class AlertRule(Strict):
    """Alertmanager alerts whose labels equal every pair in ``match`` trigger the playbook."""

    match: Annotated[dict[str, str], Field(min_length=1)]


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
    max_rollbacks_per_hour: Annotated[int, Field(ge=0)] | None = None
    dry_run: bool | None = None
    auto_rollback: bool | None = None
    history: Annotated[int, Field(ge=2, le=1000)] | None = None
    stop_timeout: Duration | None = None
    checks: list[Check] = []
    gates: list[GateConfig] = []
    alerts: list[AlertRule] = []
    playbook: list[Step] = []
    traffic: TrafficConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _infer_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and "kind" not in data:
            present = [kind.value for kind in TargetKind if kind.value in data]
            if len(present) == 1:
                return dict(data, kind=present[0])
        return data

    @model_validator(mode="before")
    @classmethod
    def _gate_http_failures(cls, data: Any) -> Any:
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
            if isinstance(c, dict) and c.get("type") == "http" and c.get("name") not in rated
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


class Config(Strict):
    listen: str = "127.0.0.1:9797"
    api_token_file: Path | None = None
    api_token: str | None = None
    state_dir: Path = Path("/var/lib/watchdogd")
    docker: DockerSettings = DockerSettings()
    log: LogSettings = LogSettings()
    server: ServerSettings = ServerSettings()
    defaults: Defaults = Defaults()
    notify: list[Notifier] = []
    targets: list[TargetConfig] = []
    # Values that came from ${ENV} expansion; the logger and the API redact them.
    _secrets: frozenset[str] = PrivateAttr(default=frozenset())

    @property
    def secrets(self) -> frozenset[str]:
        return self._secrets

    def remember_secrets(self, values: frozenset[str]) -> None:
        self._secrets = values

    # ${VAR}s that were not set, loaded as placeholders (``check-config`` only).
    _unset_variables: tuple[str, ...] = PrivateAttr(default=())

    @property
    def unset_variables(self) -> tuple[str, ...]:
        return self._unset_variables

    def remember_unset_variables(self, names: tuple[str, ...]) -> None:
        self._unset_variables = names

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f'expected "host:port" like "127.0.0.1:9797", got {value!r}')
        return value

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
