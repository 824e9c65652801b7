"""The scrape source: the app's own ``/metrics``, turned into request, error and latency counts.

This measures real user traffic, not just probes. Every ``interval`` it fetches ``url``, parses
the text with prometheus_client's parser, and reports:

* ``counts(requests, errors)``: the increase since the previous scrape of the series matching
  ``requests`` and ``errors``, summed. A selector is a metric name with optional PromQL label
  matchers: ``http_requests_total{status=~"5..", handler!="metrics"}`` (``=``, ``!=``, ``=~``,
  ``!~``; regexes are anchored, as in PromQL; a missing label matches as ``""``).
* ``latency(seconds, n)`` per histogram bucket that grew: the bucket deltas of
  ``<latency_histogram>_bucket``, summed across label sets by ``le``.

Counter rules, as in Prometheus' ``rate()``:

* A counter that went down was reset (the app restarted), so its whole new value is the delta.
* The first successful scrape only sets the baseline and reports nothing: we cannot know when
  the counts it shows happened.
* A series that first appears in a *later* scrape counts from 0, so its whole value is a delta.
  Client libraries create a labelled series at its first increment (``status="500"`` appears
  with the first error), so a series absent from the previous scrape started at 0 since then;
  baselining it instead would swallow the first burst of errors of a bad release. (Prometheus'
  ``increase()`` misses that first value; here the cost of missing it is a late rollback.) This
  assumes the URL reaches one process: a load balancer alternating between replicas makes any
  counter arithmetic meaningless.
* A series that vanishes keeps its last value, so one that comes back is not counted twice.

Histogram buckets are cumulative: the observations in a bucket are its delta minus the delta of
the bucket below. A histogram only says what its buckets say: an observation in the bucket
``(lower, upper]`` is known to be *above* ``lower``, no more. So each is reported at its
bucket's lower bound, marked ``above`` (``+Inf`` observations at the highest finite bound, the
first bucket's at 0): every latency statistic of a scrape is a lower bound, and a latency gate
counts an observation as slower than its threshold only when its bucket lies wholly above it.
A threshold on a bucket boundary (``above: 2s`` with an ``le="2.0"`` bucket) decides exactly as
the app's own histogram would; a threshold inside a bucket uses its lower bound, which cannot
cause a false breach but may miss a slow release. The first scrape that shows the buckets warns
when a gate's threshold is not one of them, naming the nearest boundaries.

When ``/metrics`` cannot be fetched or parsed, the source reports ``unknown``, not a failure:
an app that is down is caught by the http and container checks, so a scrape failure alone must
never breach (a broken metrics endpoint is not a broken release). Counter state survives the
gap; the first scrape afterwards reports everything that happened meanwhile. When no series
matches ``requests`` the data is unknown too (a typo, or an app that has served nothing yet).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import structlog
from prometheus_client.parser import text_string_to_metric_families

from watchdogd.config.schema import ScrapeCheck
from watchdogd.core.selector import Selector
from watchdogd.errors import SourceUnavailable
from watchdogd.redact import describe_error, redact
from watchdogd.sources.http import read_capped
from watchdogd.sources.poller import Poller
from watchdogd.sources.schedule import StateChangeLog

log = structlog.get_logger(__name__)

#: A /metrics page larger than this is cut off and fails to parse (reported as unknown).
MAX_METRICS_BODY = 32 * 1024 * 1024

SeriesKey = tuple[str, frozenset[tuple[str, str]]]


class CounterDeltas:
    """Per-series counter state: turns successive scrapes into increases (module docstring)."""

    def __init__(self) -> None:
        self._last: dict[SeriesKey, float] = {}
        self._primed = False

    @property
    def primed(self) -> bool:
        return self._primed

    def update(self, series: Mapping[SeriesKey, float]) -> dict[SeriesKey, float]:
        """Record a scrape and return each present series' increase since the previous one."""
        deltas: dict[SeriesKey, float] = {}
        present = {key: value for key, value in series.items() if not math.isnan(value)}
        # One endpoint is one process: when any counter went down, the process restarted and
        # every counter started again from 0. Judging series one by one would mix old and
        # new counts (a histogram's buckets would no longer nest).
        restarted = any(
            key in self._last and value < self._last[key] for key, value in present.items()
        )
        for key, value in present.items():
            previous = self._last.get(key)
            if previous is None:
                deltas[key] = value if self._primed else 0.0
            elif restarted:
                deltas[key] = value
            else:
                deltas[key] = value - previous
            self._last[key] = value
        self._primed = True
        return deltas


@dataclass(frozen=True)
class ScrapeResult:
    """One interval's worth of traffic, as reported to the sink."""

    requests: int
    errors: int
    latencies: tuple[tuple[float, int], ...]  # (bucket lower bound, observations above it)
    bounds: tuple[float, ...] = ()  # the histogram's finite bucket boundaries


class ScrapeSource(Poller[ScrapeCheck]):
    """One ``type: scrape`` check. ``run`` scrapes every ``interval``; ``probe_once`` now."""

    def _prepare(self) -> None:
        check = self.check
        self._timeout = aiohttp.ClientTimeout(total=check.timeout)
        self.requests = Selector.parse(check.requests)
        self.errors = Selector.parse(check.errors) if check.errors else None
        self.histogram: Selector | None = None
        if check.latency_histogram:
            parsed = Selector.parse(check.latency_histogram)
            if parsed.name is None:
                raise ValueError("latency_histogram needs a metric name")
            bucket = parsed.name if parsed.name.endswith("_bucket") else f"{parsed.name}_bucket"
            self.histogram = parsed.renamed(bucket)
        self._deltas = CounterDeltas()
        self._log = StateChangeLog("scrape_unavailable", "scrape_back", check=check.name)
        #: The latency thresholds of this check's gates (set by the daemon's wiring), checked
        #: once against the histogram's buckets.
        self.latency_thresholds: tuple[float, ...] = ()
        self._bounds_checked = False

    async def probe_once(self) -> None:
        """Scrape once and report the traffic since the previous scrape (or unknown)."""
        try:
            result = self.ingest(_parse(await self._fetch()))
        except SourceUnavailable as err:
            self._unknown(str(err))
            return
        self._log.ok()
        if result is None:
            return
        if result.bounds and not self._bounds_checked:
            self._bounds_checked = True
            for warning in threshold_warnings(result.bounds, self.latency_thresholds):
                log.warning("latency_threshold_inside_bucket", detail=warning)
        now = self._clock()
        self._sink.counts(now, result.requests, result.errors)
        for seconds, count in result.latencies:
            self._sink.latency(now, seconds, count, above=True)

    def ingest(self, samples: Mapping[SeriesKey, float]) -> ScrapeResult | None:
        """Turn one parsed scrape into deltas; ``None`` for the baseline scrape. Raises
        :class:`SourceUnavailable` when no series matches ``requests``."""
        watched = {key: value for key, value in samples.items() if self._watches(key)}
        if not any(self.requests.matches(name, dict(labels)) for name, labels in watched):
            # Checked before the deltas are updated, so the state keeps the last good scrape.
            raise SourceUnavailable(f"no series matches requests selector {self.check.requests!r}")
        first = not self._deltas.primed
        deltas = self._deltas.update(watched)
        if first:
            return None
        requests = _total(deltas, self.requests)
        errors = _total(deltas, self.errors) if self.errors else 0
        # The app bumps its error and request counters one after the other, so a scrape in
        # between can see one more error than requests; the window needs errors <= requests.
        errors = min(errors, requests)
        latencies, bounds = _bucket_counts(deltas, self.histogram) if self.histogram else ((), ())
        return ScrapeResult(requests, errors, latencies, bounds)

    def _watches(self, key: SeriesKey) -> bool:
        name, labels = key[0], dict(key[1])
        return any(
            selector is not None and selector.matches(name, labels)
            for selector in (self.requests, self.errors, self.histogram)
        )

    async def _fetch(self) -> str:
        async with self._client.in_flight:
            try:
                async with self._client.session.get(
                    self.check.url, timeout=self._timeout
                ) as response:
                    body = await read_capped(response, MAX_METRICS_BODY)
                    status = response.status
            except (TimeoutError, aiohttp.ClientError) as err:
                raise SourceUnavailable(describe_error(err)) from err
        if status != 200:
            raise SourceUnavailable(f"status {status} from the metrics endpoint")
        return body.decode(errors="replace")

    def _unknown(self, reason: str) -> None:
        reason = redact(reason, self._secrets)
        self._sink.unknown(self._clock(), reason)
        self._log.failing(reason)


def _parse(text: str) -> dict[SeriesKey, float]:
    samples: dict[SeriesKey, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    except ValueError as err:
        # The parser's message quotes the offending line; keep only that it failed.
        raise SourceUnavailable("the metrics text does not parse") from err
    return samples


def _total(deltas: Mapping[SeriesKey, float], selector: Selector) -> int:
    total = sum(
        delta for (name, labels), delta in deltas.items() if selector.matches(name, dict(labels))
    )
    return round(total)


def _bucket_counts(
    deltas: Mapping[SeriesKey, float], selector: Selector
) -> tuple[tuple[tuple[float, int], ...], tuple[float, ...]]:
    """(lower bound, observations) per bucket that grew, and the finite boundaries."""
    cumulative: dict[float, float] = {}
    for (name, labels), delta in deltas.items():
        as_dict = dict(labels)
        if "le" not in as_dict:
            continue
        # Label sets differ only in ``le`` within one histogram; match on the others.
        bound_text = as_dict.pop("le")
        if not selector.matches(name, as_dict):
            continue
        try:
            bound = float(bound_text)
        except ValueError:
            continue
        cumulative[bound] = cumulative.get(bound, 0.0) + delta
    finite = sorted(b for b in cumulative if math.isfinite(b))
    if not finite:
        return (), ()
    counts: list[tuple[float, int]] = []
    below = 0.0
    lower = 0.0  # the first bucket is (0, le]
    for bound in [*finite, math.inf]:
        if bound not in cumulative:
            continue
        # Clamped: buckets scraped mid-update can be off by one against each other.
        observed = round(max(0.0, cumulative[bound] - below))
        below = max(below, cumulative[bound])
        if observed > 0:
            counts.append((lower, observed))
        if math.isfinite(bound):
            lower = bound
    return tuple(counts), tuple(finite)


def threshold_warnings(bounds: Sequence[float], thresholds: Sequence[float]) -> list[str]:
    """One sentence per threshold that is not a bucket boundary, naming the nearest ones."""
    warnings = []
    for threshold in thresholds:
        if any(math.isclose(threshold, b, rel_tol=1e-9) for b in bounds):
            continue
        lower = max((b for b in bounds if b < threshold), default=0.0)
        upper = min((b for b in bounds if b > threshold), default=math.inf)
        warnings.append(
            f"latency threshold {threshold:g}s falls inside the histogram bucket "
            f"({lower:g}s, {upper:g}s]: requests in it count as {lower:g}s, so the gate cannot "
            f"breach falsely but may miss a slow release; use le={lower:g} or le={upper:g} as "
            "the threshold, or add a bucket boundary at it"
        )
    return warnings
