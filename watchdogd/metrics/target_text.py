"""The per-target series of ``/metrics``, written straight to Prometheus text.

Why not prometheus_client for these: a daemon watching 1000 targets exports about 35 series
per target, and prometheus_client spends about 10 us a series building sample objects,
validating label names and formatting values, so ``/metrics`` took 450 ms and held the event
loop for all of it (benchmarks/bench_load.py, scale). Written here from plain numbers, with
the label text built once per target, the same 35 000 lines take about 15 ms. The text is
what prometheus_client would write: the same names, HELP and TYPE lines, label names in
sorted order, values as floats.

The probe counters and the probe duration histogram live with each check's recorder
(``watch.tally.ProbeTally``), not in the registry, so a reload that drops a target or a check drops
its series too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from watchdogd.core.incident import TargetState
from watchdogd.watch.tally import PROBE_BUCKETS, ProbeTally

# Every state of the core's machine, in its order: one series each, 1 for the current one.
TARGET_STATES = tuple(str(state) for state in TargetState)
QUANTILES = ("0.5", "0.95", "0.99")
_LE = (*(repr(b) for b in PROBE_BUCKETS), "+Inf")
PROBE_RESULTS = ("ok", "failure", "unknown")


class CheckView(Protocol):
    """What the renderer reads of one check's window."""

    @property
    def check(self) -> str: ...
    @property
    def requests(self) -> int: ...
    @property
    def error_ratio(self) -> float | None: ...
    @property
    def quantiles(self) -> Mapping[str, float | None]:
        """Seconds by quantile: ``"0.5"``, ``"0.95"``, ``"0.99"``."""

    @property
    def source_up(self) -> bool: ...
    @property
    def tally(self) -> ProbeTally: ...


class GateView(Protocol):
    @property
    def gate(self) -> str: ...
    @property
    def breached(self) -> bool: ...
    @property
    def verdict(self) -> str: ...


class TargetView(Protocol):
    """What the renderer reads of one target."""

    @property
    def target(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def container_healthy(self) -> bool | None: ...
    @property
    def releases(self) -> Sequence[tuple[str, str]]:
        """(image, state) pairs: current, known_good, quarantined."""

    @property
    def checks(self) -> Sequence[CheckView]: ...
    @property
    def gates(self) -> Sequence[GateView]: ...


def _value(number: float) -> str:
    if math.isfinite(number):
        return repr(float(number))
    return "NaN" if math.isnan(number) else ("+Inf" if number > 0 else "-Inf")


def _label(text: str) -> str:
    """A label value escaped as the text format wants (target and check names never need it;
    image references might, one day)."""
    if "\\" in text or '"' in text or "\n" in text:
        return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return text


_FAMILIES = (
    ("watchdogd_target_state", "gauge", "1 for the state each target is in."),
    ("watchdogd_container_healthy", "gauge", "1 healthy, 0 unhealthy; absent when unknown."),
    (
        "watchdogd_release_info",
        "gauge",
        "Releases a target knows: current, known_good, quarantined.",
    ),
    ("watchdogd_window_requests", "gauge", "Requests or probes in the check's sliding window."),
    (
        "watchdogd_window_error_ratio",
        "gauge",
        "Errors over requests in the check's sliding window.",
    ),
    (
        "watchdogd_window_latency_seconds",
        "gauge",
        "Latency quantiles over the check's sliding window.",
    ),
    ("watchdogd_source_up", "gauge", "1 while the check's source can observe its target."),
    ("watchdogd_gate_breached", "gauge", "1 while a gate is breached."),
    ("watchdogd_gate_unknown", "gauge", "1 while a gate lacks the data to decide."),
    ("watchdogd_probes_total", "counter", "Observations by result (ok, failure, unknown)."),
    (
        "watchdogd_probe_duration_seconds",
        "histogram",
        "Duration of probes, auth flows, scrapes and queries.",
    ),
)


def render_targets(views: Iterable[TargetView]) -> str:
    """Every per-target family, in the order of ``_FAMILIES``."""
    lines: list[list[str]] = [[f"# HELP {n} {h}\n# TYPE {n} {t}\n"] for n, t, h in _FAMILIES]
    (
        state,
        healthy,
        release,
        requests,
        ratio,
        latency,
        up,
        breached,
        unknown,
        probes,
        durations,
    ) = (family.append for family in lines)
    for view in views:
        t = _label(view.target)
        for name in TARGET_STATES:
            one = "1.0" if view.state == name else "0.0"
            state(f'watchdogd_target_state{{state="{name}",target="{t}"}} {one}\n')
        if view.container_healthy is not None:
            one = "1.0" if view.container_healthy else "0.0"
            healthy(f'watchdogd_container_healthy{{target="{t}"}} {one}\n')
        for image, kind in view.releases:
            image_label = _label(image)
            release(
                f'watchdogd_release_info{{image="{image_label}",state="{kind}",target="{t}"}} 1.0\n'
            )
        for check in view.checks:
            ct = f'check="{_label(check.check)}",target="{t}"'
            requests(f"watchdogd_window_requests{{{ct}}} {_value(check.requests)}\n")
            up(f"watchdogd_source_up{{{ct}}} {'1.0' if check.source_up else '0.0'}\n")
            if check.error_ratio is not None:
                ratio(f"watchdogd_window_error_ratio{{{ct}}} {_value(check.error_ratio)}\n")
            c = f'check="{_label(check.check)}"'
            for quantile in QUANTILES:
                seconds = check.quantiles.get(quantile)
                if seconds is not None:
                    latency(
                        f'watchdogd_window_latency_seconds{{{c},quantile="{quantile}",'
                        f'target="{t}"}} {_value(seconds)}\n'
                    )
            tally = check.tally
            for result, count in zip(
                PROBE_RESULTS, (tally.ok, tally.failure, tally.unknown), strict=True
            ):
                probes(f'watchdogd_probes_total{{{c},result="{result}",target="{t}"}} {count}.0\n')
            cumulative = 0
            for le, count in zip(_LE, tally.buckets, strict=True):
                cumulative += count
                durations(
                    f'watchdogd_probe_duration_seconds_bucket{{{c},le="{le}",target="{t}"}} '
                    f"{cumulative}.0\n"
                )
            durations(f"watchdogd_probe_duration_seconds_count{{{ct}}} {tally.duration_count}.0\n")
            durations(
                f"watchdogd_probe_duration_seconds_sum{{{ct}}} {_value(tally.duration_sum)}\n"
            )
        for gate in view.gates:
            gt = f'gate="{_label(gate.gate)}",target="{t}"'
            breached(f"watchdogd_gate_breached{{{gt}}} {'1.0' if gate.breached else '0.0'}\n")
            pending = "1.0" if gate.verdict == "unknown" else "0.0"
            unknown(f"watchdogd_gate_unknown{{{gt}}} {pending}\n")
    return "".join(line for family in lines for line in family)
