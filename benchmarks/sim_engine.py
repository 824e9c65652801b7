"""The engine of ``decision_sim.py``: synthetic traffic driven through the daemon's own core.

What is real: ``CheckRecorder`` (the window, the in-flight probes, the evidence hook),
``Gate(GateConfig(...).spec())`` with the schema's defaults, and ``ScrapeSource.ingest`` for
scraped counters and histograms. What is simulated: time, the service and the daemon's loop.
The loop is modelled as the daemon runs it: gates are evaluated on a 1 s tick at a random
phase, and at once when a recorder reports evidence (a failure, a slow sample, a probe waiting
past a latency threshold: ``CheckRecorder.on_evidence``).

Three ways a check sees the service (``Feed``):

* ``probe``: an ``http`` probe every ``interval``, with the timeout and bounded overlap of
  ``Poller.overlap``; a timed-out probe is a failure with latency = timeout; a refused
  connection a failure without latency, at once;
* ``requests``: every user request as a sample (Poisson arrivals), reported when it completes;
* ``scrape``: the app's counters and a prometheus_client histogram with the default buckets,
  scraped every ``interval``; with ``resets``, the app restarts every ``resets`` seconds: its
  counters start again from zero and nothing answers the scrapes of the next minute;
* ``log``: every request as a line of HAProxy's per-request log, through the receiver into the
  deploy's window and traffic gates (``sim_haproxy``), some lines lost (``drop``).

Nothing sleeps and nothing reads a clock: a seed gives the same numbers every time.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from watchdogd.config.schema import GateConfig, ScrapeCheck
from watchdogd.config.validation import parse
from watchdogd.core.gates import Gate, GateResult, Verdict
from watchdogd.sources.scrape import ScrapeSource
from watchdogd.watch.recorder import CheckRecorder

#: prometheus_client's default histogram buckets.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
HANG = math.inf  # a latency that never ends: the service accepted and never answers
REFUSED = -1.0  # a latency marker: nothing listens, the probe fails at once


class Service(Protocol):
    """What the service does with a request that arrives at ``t``: (ok, latency)."""

    def __call__(self, t: float, rng: random.Random) -> tuple[bool, float]: ...


@dataclass(frozen=True)
class Feed:
    """How the check sees the service (module docstring)."""

    kind: str  # "probe", "requests" or "scrape"
    rate: float = 1.0  # requests/s for "requests" and "scrape"; probes: 1 / interval
    interval: float = 1.0  # probe or scrape interval
    timeout: float = 10.0  # probe timeout
    rate_at: Callable[[float], float] | None = None  # time-varying request rate
    peak: float = 0.0  # the highest rate_at, for thinning
    resets: float = 0.0  # scrape: the app restarts every this many seconds (0: never)
    drop: float = 0.0  # log: share of log lines lost
    drop_bursts: tuple[float, float] | None = None  # log: (every, length) s of lost lines


@dataclass
class Outcome:
    """Transitions into BREACHED before ``change`` (false triggers) and the first breach at
    or after it (detection), in seconds after ``change``."""

    false_triggers: int = 0
    detected: float | None = None
    seconds: float = 0.0
    reasons: list[str] = field(default_factory=list)


def gates_for(feed: Feed, latency_above: float = 2.0) -> list[GateConfig]:
    """The gates a user writes for this feed, with the schema's defaults: a latency p95 gate,
    and the error gate (the implied ``failure_rate above 1%`` of an http check)."""
    metric = "failure_rate" if feed.kind == "probe" else "error_rate"
    return [
        parse(GateConfig, {"check": "c", "metric": metric, "above": 0.01}),
        parse(GateConfig, {"check": "c", "metric": "latency_p95", "above": latency_above}),
    ]


def simulate(
    service: Service,
    feed: Feed,
    seconds: float,
    seed: int,
    *,
    change: float | None = None,
    gates: list[GateConfig] | None = None,
    warmup: float = 0.0,
    window: float = 300.0,
) -> Outcome:
    """Run ``seconds`` of ``service`` seen through ``feed``; stop at the first breach at or
    after ``change`` (None: count false triggers over the whole run)."""
    rng = random.Random(seed)
    if feed.kind == "log":
        from sim_haproxy import simulate_log  # noqa: PLC0415 - a sibling that imports this

        return simulate_log(service, feed, seconds, rng, change=change)
    configs = gates if gates is not None else gates_for(feed)
    thresholds = tuple(
        sorted({g.above for g in configs if g.above is not None and "latency" in g.metric})
    )
    recorder = CheckRecorder("t", "c", feed.kind, window, thresholds=thresholds)
    evidence = [False]

    def note() -> None:
        evidence[0] = True

    recorder.on_evidence = note
    judges = [Gate(g.spec()) for g in configs]

    def evaluate(now: float) -> list[GateResult]:
        stats = recorder.stats(now)
        return [g.evaluate(stats, now, recorder.source_up, warming_up=now < warmup) for g in judges]

    outcome = Outcome(seconds=seconds)
    breached = False
    events: list[tuple[float, int, int, Any]] = []  # (time, order, kind, payload)
    order = 0

    def push(at: float, kind: int, payload: Any = None) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (at, order, kind, payload))

    _schedule_feed(service, feed, seconds, rng=rng, push=push, thresholds=thresholds)
    tick = rng.random()
    scraper = _Scraper(feed) if feed.kind == "scrape" else None
    warm = warmup > 0.0
    while tick <= seconds:
        # Everything due before the next tick, in time order, evaluating on evidence.
        while events and events[0][0] < tick:
            at, _, kind, payload = heapq.heappop(events)
            if warm and at >= warmup:
                warm = _end_warmup(recorder)
            if kind == _PROBE_START:
                payload[0] = recorder.probe_started(at)
                continue
            if kind == _DONE:
                token, ok, latency = payload
                recorder.probe(at, ok, latency, "", token[0] if token else None)
            elif kind == _SCRAPE:
                assert scraper is not None
                scraper.scrape(at, recorder)
            elif kind == _REQUEST and scraper is not None:
                scraper.observe(at, *payload)
                continue
            # _WAITING: a probe past a threshold is evidence now.
            if kind == _WAITING or evidence[0]:
                evidence[0] = False
                breached = _judge(evaluate, at, change=change, was=breached, outcome=outcome)
                if outcome.detected is not None:
                    return outcome
        if warm and tick >= warmup:
            warm = _end_warmup(recorder)
        breached = _judge(evaluate, tick, change=change, was=breached, outcome=outcome)
        if outcome.detected is not None:
            return outcome
        tick += 1.0
    return outcome


_PROBE_START, _DONE, _WAITING, _REQUEST, _SCRAPE = range(5)


def _end_warmup(recorder: CheckRecorder) -> bool:
    """As the controller does: the warm-up's samples are shown, not judged afterwards."""
    recorder.reset()
    return False


def _judge(
    evaluate: Callable[[float], list[GateResult]],
    now: float,
    *,
    change: float | None,
    was: bool,
    outcome: Outcome,
) -> bool:
    """Judge at ``now``; count a transition into BREACHED before ``change`` as a false
    trigger, the first breach at or after it as the detection. Returns whether breached."""
    results = evaluate(now)
    hit = [r for r in results if r.verdict is Verdict.BREACHED]
    if change is not None and now >= change:
        if hit:
            outcome.detected = now - change
            outcome.reasons.append(hit[0].reason)
        return bool(hit)
    if hit and not was:
        outcome.false_triggers += 1
        if len(outcome.reasons) < 3:
            outcome.reasons.append(f"t={now:.0f}s {hit[0].reason}")
    return bool(hit)


def _schedule_feed(
    service: Service,
    feed: Feed,
    seconds: float,
    *,
    rng: random.Random,
    push: Callable[[float, int, Any], None],
    thresholds: tuple[float, ...],
) -> None:
    if feed.kind == "probe":
        _schedule_probes(service, feed, seconds, rng=rng, push=push, thresholds=thresholds)
        return
    for at, ok, latency in _requests(service, feed, seconds, rng):
        done = at + latency
        if feed.kind == "requests":
            push(done, _DONE, (None, ok, latency))
        else:
            push(done, _REQUEST, (ok, latency))
    if feed.kind == "scrape":
        scrape_at = rng.random() * feed.interval
        while scrape_at <= seconds:
            push(scrape_at, _SCRAPE, None)
            scrape_at += feed.interval


def _requests(
    service: Service, feed: Feed, seconds: float, rng: random.Random
) -> list[tuple[float, bool, float]]:
    """Poisson arrivals at ``feed.rate`` (or ``rate_at(t)``, by thinning below ``peak``)."""
    out = []
    peak = feed.peak if feed.rate_at is not None else feed.rate
    at = rng.expovariate(peak)
    rate_at, uniform = feed.rate_at, rng.random
    while at <= seconds:
        if rate_at is None or uniform() * peak < rate_at(at):
            ok, latency = service(at, rng)
            out.append((at, ok, latency))
        at += rng.expovariate(peak)
    return out


def _schedule_probes(
    service: Service,
    feed: Feed,
    seconds: float,
    *,
    rng: random.Random,
    push: Callable[[float, int, Any], None],
    thresholds: tuple[float, ...],
) -> None:
    """Fixed-rate probes with bounded overlap (``Poller.overlap``): a tick is skipped only
    when that many probes are still waiting; a failed probe looks again half an interval
    later (``Poller._look_again``)."""
    overlap = max(1, min(4, math.ceil(feed.timeout / feed.interval)))
    ends: list[float] = []  # completion times of regular probes in flight
    extras: list[float] = []  # and of the extra ones
    starts = [(rng.random() * feed.interval, False)]
    look_pending = False
    while starts:
        at, extra = heapq.heappop(starts)
        if at > seconds:
            continue
        if not extra:
            heapq.heappush(starts, (at + feed.interval, False))
        else:
            look_pending = False
        ends = [end for end in ends if end > at]
        extras = [end for end in extras if end > at]
        if len(ends if not extra else extras) >= overlap:
            continue
        ok, latency = service(at, rng)
        token: list[int | None] = [None]
        push(at, _PROBE_START, token)
        if latency == REFUSED:
            end, ok, reported = at + 0.001, False, None
        elif latency > feed.timeout:
            end, ok, reported = at + feed.timeout, False, feed.timeout
        else:
            end, reported = at + latency, latency
        for threshold in thresholds:
            if reported is not None and reported > threshold:
                push(at + threshold + 1e-3, _WAITING, None)
        push(end, _DONE, (token, ok, reported))
        (extras if extra else ends).append(end)
        if not ok and not look_pending:
            look_pending = True
            heapq.heappush(starts, (end + feed.interval / 2, True))


class _Scraper:
    """The app's cumulative counters and histogram, scraped by the real ``ScrapeSource``."""

    def __init__(self, feed: Feed) -> None:
        check = parse(
            ScrapeCheck,
            {
                "name": "c",
                "type": "scrape",
                "url": "http://app/metrics",
                "requests": "http_requests_total",
                "errors": 'http_requests_total{status="500"}',
                "latency_histogram": "http_request_duration_seconds",
            },
        )
        # ingest() needs no client: only the parsing and the counter arithmetic are used.
        self.source = ScrapeSource(check, cast(Any, None), cast(Any, None))
        self.resets = feed.resets
        self.epoch = 0  # app restarts so far
        self.ok = 0
        self.errors = 0
        self.buckets = [0] * (len(DEFAULT_BUCKETS) + 1)

    def _restarted(self, now: float) -> bool:
        """With ``resets``: the app restarts every ``resets`` s, its counters from zero, and
        answers no scrape for a minute. True while it does not answer."""
        if not self.resets:
            return False
        epoch = math.floor(now / self.resets)
        if epoch != self.epoch:
            self.epoch = epoch
            self.ok = self.errors = 0
            self.buckets = [0] * len(self.buckets)
        return now - epoch * self.resets < 60.0 and epoch > 0

    def observe(self, now: float, ok: bool, latency: float) -> None:
        self._restarted(now)
        if ok:
            self.ok += 1
        else:
            self.errors += 1
        for i, bound in enumerate(DEFAULT_BUCKETS):
            if latency <= bound:
                self.buckets[i] += 1
                return
        self.buckets[-1] += 1

    def scrape(self, now: float, recorder: CheckRecorder) -> None:
        if self._restarted(now):
            recorder.unknown(now, "connection refused")  # as ScrapeSource reports it
            return
        name = "http_requests_total"
        samples: dict[Any, float] = {
            (name, frozenset({("status", "200")})): float(self.ok),
            (name, frozenset({("status", "500")})): float(self.errors),
        }
        total = 0
        for bound, count in zip([*DEFAULT_BUCKETS, math.inf], self.buckets, strict=True):
            total += count
            le = "+Inf" if math.isinf(bound) else repr(bound)
            samples[("http_request_duration_seconds_bucket", frozenset({("le", le)}))] = total
        result = self.source.ingest(samples)
        if result is None:
            return
        recorder.counts(now, result.requests, result.errors)
        for seconds, count in result.latencies:
            recorder.latency(now, seconds, count, above=True)
