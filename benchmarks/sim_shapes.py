"""Traffic shapes for ``decision_sim.py``: what a service does with a request arriving at ``t``.

Each shape is a small frozen dataclass with ``__call__(t, rng) -> (ok, latency)``, so that rows
can be sent to worker processes. Latencies are seconds; ``sim_engine.REFUSED`` and
``sim_engine.HANG`` mark a refused connection and an answer that never comes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from sim_engine import HANG, REFUSED, Service

Z95 = 1.6448536269514722


def median_for_p95(p95: float, sigma: float) -> float:
    """The lognormal median whose 95th percentile is ``p95``."""
    return p95 / math.exp(Z95 * sigma)


@dataclass(frozen=True)
class Lognormal:
    """Independent requests: ``errors`` fail; latency lognormal around ``median``."""

    median: float = 0.05
    sigma: float = 0.5
    errors: float = 0.005

    def __call__(self, t: float, rng: random.Random) -> tuple[bool, float]:
        return rng.random() >= self.errors, self.median * math.exp(self.sigma * rng.gauss(0, 1))


def heavy_tail(sigma: float, p95: float = 1.6, errors: float = 0.005) -> Lognormal:
    return Lognormal(median_for_p95(p95, sigma), sigma, errors)


@dataclass(frozen=True)
class Fixed:
    """Every request the same: ``latency`` (or REFUSED / HANG), ``ok`` or not."""

    ok: bool
    latency: float

    def __call__(self, t: float, rng: random.Random) -> tuple[bool, float]:
        return self.ok, self.latency


REFUSING = Fixed(False, REFUSED)
HANGING = Fixed(False, HANG)


@dataclass(frozen=True)
class Step:
    """``before`` until ``at``, then ``after``: a deploy of a bad release."""

    before: Service
    after: Service
    at: float

    def __call__(self, t: float, rng: random.Random) -> tuple[bool, float]:
        return (self.after if t >= self.at else self.before)(t, rng)


@dataclass(frozen=True)
class Episodes:
    """``base``, except for ``length`` seconds every ``every`` seconds, when ``during`` answers
    a share ``share`` of the requests (bursts, blips of 503s, brownouts)."""

    base: Service
    during: Service
    every: float
    length: float
    share: float = 1.0
    offset: float = 123.0

    def __call__(self, t: float, rng: random.Random) -> tuple[bool, float]:
        inside = (t - self.offset) % self.every < self.length
        if inside and (self.share >= 1.0 or rng.random() < self.share):
            return self.during(t, rng)
        return self.base(t, rng)


@dataclass(frozen=True)
class Pauses:
    """Stop-the-world pauses of ``pause`` seconds every ``every`` seconds (a GC): a request
    arriving during one waits for its end."""

    base: Service
    every: float
    pause: float

    def __call__(self, t: float, rng: random.Random) -> tuple[bool, float]:
        ok, latency = self.base(t, rng)
        into = t % self.every
        return ok, latency + (self.pause - into if into < self.pause else 0.0)


@dataclass(frozen=True)
class Drift:
    """Latency median moving from ``start`` to ``end`` over ``over`` seconds (slow drift)."""

    start: float
    end: float
    over: float
    sigma: float = 1.0
    errors: float = 0.005

    def __call__(self, t: float, rng: random.Random) -> tuple[bool, float]:
        median = self.start + (self.end - self.start) * min(1.0, t / self.over)
        return Lognormal(median, self.sigma, self.errors)(t, rng)


@dataclass(frozen=True)
class Replicas:
    """Round-robin-ish over replicas: each request goes to one at random."""

    replicas: tuple[Service, ...]

    def __call__(self, t: float, rng: random.Random) -> tuple[bool, float]:
        return self.replicas[rng.randrange(len(self.replicas))](t, rng)


@dataclass(frozen=True)
class Diurnal:
    """A request rate between ``low`` and ``high`` over a day (peak at noon); with
    ``night_zero``, no traffic at all for the quietest third of the day."""

    low: float
    high: float
    night_zero: bool = False

    def __call__(self, t: float) -> float:
        wave = (1.0 - math.cos(2.0 * math.pi * t / 86400.0)) / 2.0
        if self.night_zero and wave < 0.25:
            return 0.0
        return self.low + (self.high - self.low) * wave


@dataclass(frozen=True)
class Mix:
    """A share ``share`` of the requests answered by ``other``, the rest by ``base``, at all
    times (slow clients, cache misses)."""

    base: Service
    other: Service
    share: float

    def __call__(self, t: float, rng: random.Random) -> tuple[bool, float]:
        return (self.other if rng.random() < self.share else self.base)(t, rng)


def share_above(service: Lognormal, threshold: float) -> float:
    """The true share of ``service``'s latencies above ``threshold``."""
    z = math.log(threshold / service.median) / service.sigma
    return 0.5 * math.erfc(z / math.sqrt(2.0))
