"""What a gate is: its metric, its spec from the configuration, its verdict and its result.

The vocabulary ``gates`` judges with, and the configuration and the controller build with.
Pure values: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["GateMetric", "GateResult", "GateSpec", "Verdict"]


class Verdict(StrEnum):
    OK = "ok"
    BREACHED = "breached"
    UNKNOWN = "unknown"


class GateMetric(StrEnum):
    ERROR_RATE = "error_rate"
    FAILURE_RATE = "failure_rate"
    LATENCY_P50 = "latency_p50"
    LATENCY_P95 = "latency_p95"
    LATENCY_P99 = "latency_p99"
    LATENCY_MEAN = "latency_mean"
    LATENCY_MAX = "latency_max"
    UNHEALTHY = "unhealthy"
    VALUE = "value"


@dataclass(frozen=True)
class GateSpec:
    """What one gate checks. Ratios are 0..1, latencies seconds, values raw."""

    name: str
    metric: GateMetric
    above: float | None = None
    below: float | None = None
    for_: float = 0.0
    min_samples: int = 20
    confidence: float = 0.995
    min_errors: int = 20
    consecutive_failures: int = 3
    max_staleness: float | None = None
    min_slow: int = 20

    def __post_init__(self) -> None:
        if self.metric is GateMetric.VALUE:
            if self.above is None and self.below is None:
                raise ValueError(f"gate {self.name}: a value gate needs above or below")
        elif self.below is not None:
            raise ValueError(f"gate {self.name}: below is only for value gates")
        elif self.metric is not GateMetric.UNHEALTHY and self.above is None:
            raise ValueError(f"gate {self.name}: {self.metric} needs above")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"gate {self.name}: confidence must be in (0, 1)")
        if min(self.for_, self.min_samples, self.min_errors, self.min_slow) < 0:
            raise ValueError(
                f"gate {self.name}: for, min_samples, min_errors and min_slow must be >= 0"
            )
        if self.consecutive_failures < 0:
            raise ValueError(f"gate {self.name}: consecutive_failures must be >= 0")


@dataclass(frozen=True)
class GateResult:
    """One evaluation: the verdict, the instantaneous condition and the numbers behind it."""

    gate: str
    verdict: Verdict
    condition: Verdict
    value: float | None
    threshold: float | None
    reason: str
    samples: int
