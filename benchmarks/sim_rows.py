"""The rows of ``decision_sim.py``'s tables: the feeds, and one function per kind of question.

A row is plain data: a name, the jobs it runs in worker processes (each a ``sim_engine.simulate``
call) and a summary of their results: (result text, target text, passed or None).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sim_engine import Feed, Outcome, Service, simulate
from sim_shapes import Diurnal, Lognormal, Step

__all__ = [
    "DAY",
    "HEALTHY",
    "PROBE",
    "PROBE_3S",
    "PROBE_5S",
    "Row",
    "Table",
    "day_row",
    "deploy_row",
    "detect_row",
    "diurnal",
    "log",
    "requests",
    "scrape",
]

HEALTHY = Lognormal()  # 0.5 % errors, latency around 50 ms
HEALTHY_FOR = 330.0  # seconds of good traffic before a regression: a full window and more
HORIZON = 600.0  # seconds after a regression before we call it missed
DAY = 86400.0

PROBE = Feed("probe", interval=1.0, timeout=10.0)
PROBE_3S = Feed("probe", interval=1.0, timeout=3.0)  # config/watchdogd.yaml's http check
PROBE_5S = Feed("probe", interval=1.0, timeout=5.0)


def requests(rate: float) -> Feed:
    return Feed("requests", rate=rate)


def scrape(rate: float, interval: float = 15.0) -> Feed:
    return Feed("scrape", rate=rate, interval=interval)


def diurnal(kind: str, shape: Diurnal) -> Feed:
    return Feed(kind, rate=shape.high, interval=15.0, rate_at=shape, peak=shape.high)


def log(rate: float, **kw: Any) -> Feed:
    """HAProxy's per-request log through the receiver into the deploy's window (sim_haproxy)."""
    return Feed("log", rate=rate, **kw)


# --- rows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a table: ``jobs`` run in worker processes, ``summary`` reads their results
    and returns (result text, target text, passed or None when there is no target)."""

    name: str
    feed_name: str
    jobs: Callable[[int], list[Callable[[], Any]]]
    summary: Callable[[list[Any]], tuple[str, str, bool | None]]


@dataclass
class Table:
    title: str
    rows: list[Row] = field(default_factory=list)


def day_row(
    name: str,
    service: Service,
    feed: Feed,
    feed_name: str,
    *,
    days: int = 1,
    hours: float = 24.0,
    target: bool = True,
    **kw: Any,
) -> Row:
    """Healthy for ``days`` seeds of ``hours`` each (24 h by default): target 0 false triggers
    (or a report), shown as well per 24 simulated hours."""

    def jobs(scale: int) -> list[Callable[[], Any]]:
        seconds = hours * 3600.0 if scale else 1800.0
        count = days if scale else 1
        return [partial(simulate, service, feed, seconds, seed, **kw) for seed in range(count)]

    def summary(results: list[Outcome]) -> tuple[str, str, bool | None]:
        total = sum(r.false_triggers for r in results)
        simulated = sum(r.seconds for r in results)
        text = f"{total} in {len(results)} x {results[0].seconds / 3600:g} h"
        text += f" = {total * DAY / simulated:.2g} per 24 h"
        first = next((r.reasons[0] for r in results if r.reasons), None)
        if first:
            text += f" (first: {first[:70]})"
        return (text, "0", total == 0) if target else (text, "-", None)

    return Row(name, feed_name, jobs, summary)


def detect_row(
    name: str,
    bad: Service,
    feed: Feed,
    feed_name: str,
    *,
    median: float | None = None,
    p90: float | None = None,
    seeds: int = 100,
    before: Service = HEALTHY,
    fresh: bool = False,
    **kw: Any,
) -> Row:
    """A step from ``before`` to ``bad``: detection time over ``seeds`` seeds. With ``fresh``,
    ``bad`` from an empty window (a blue-green deploy judges green from its switch)."""

    def jobs(scale: int) -> list[Callable[[], Any]]:
        healthy_for = 0.0 if fresh else HEALTHY_FOR
        service = bad if fresh else Step(before, bad, HEALTHY_FOR)
        count = seeds if scale else min(seeds, 10)
        return [
            partial(simulate, service, feed, healthy_for + HORIZON, seed, change=healthy_for, **kw)
            for seed in range(1000, 1000 + count)
        ]

    def summary(results: list[Outcome]) -> tuple[str, str, bool | None]:
        false = sum(r.false_triggers for r in results)
        times = sorted(math.inf if r.detected is None else r.detected for r in results)
        mid = statistics.median(times)
        ninety = times[min(len(times) - 1, math.ceil(0.9 * len(times)) - 1)]
        missed = sum(1 for t in times if math.isinf(t))
        text = f"median {_s(mid)}, p90 {_s(ninety)} (n={len(times)}"
        text += f", {missed} missed in {HORIZON:g} s)" if missed else ")"
        if false:
            text += f", {false} false before the step"
        targets, passed = [], None
        if median is not None:
            targets.append(f"median <= {median:g} s")
            passed = mid <= median
        if p90 is not None:
            targets.append(f"p90 <= {p90:g} s")
            passed = bool(passed is not False and ninety <= p90)
        return text, ", ".join(targets) or "-", passed

    return Row(name, feed_name, jobs, summary)


def deploy_row(
    name: str,
    service: Service,
    feed: Feed,
    feed_name: str,
    *,
    deploys: int = 400,
    target: bool = True,
    **kw: Any,
) -> Row:
    """``deploys`` fresh releases of ``service`` baking 5 minutes: how many breach."""

    def jobs(scale: int) -> list[Callable[[], Any]]:
        count = deploys if scale else 20
        return [partial(simulate, service, feed, 300.0, seed, **kw) for seed in range(count)]

    def summary(results: list[Outcome]) -> tuple[str, str, bool | None]:
        rolled = sum(1 for r in results if r.false_triggers)
        first = next((r.reasons[0] for r in results if r.reasons), None)
        text = f"{rolled} of {len(results)} deploys rolled back"
        if first:
            text += f" (first: {first[:60]})"
        return text, "0" if target else "-", (rolled == 0) if target else None

    return Row(name, feed_name, jobs, summary)


def _s(seconds: float) -> str:
    return "missed" if math.isinf(seconds) else f"{seconds:.1f} s"
