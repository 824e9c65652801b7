"""Pure parts of the sources: schedule, selectors, counter deltas, substitution, verdicts."""

from __future__ import annotations

import errno
import random

import aiohttp
import pytest

from watchdogd.config.schema import ScrapeCheck, TargetConfig
from watchdogd.config.validation import parse
from watchdogd.core.selector import Selector
from watchdogd.errors import SourceUnavailable
from watchdogd.redact import describe_error, redact
from watchdogd.sources.auth_flow import MISSING, lookup, substitute, substitute_json
from watchdogd.sources.docker_health import ContainerSelector, ContainerState
from watchdogd.sources.promql import parse_query_response
from watchdogd.sources.schedule import FixedRateSchedule, run_every
from watchdogd.sources.scrape import CounterDeltas, ScrapeSource


class _Stop(BaseException):
    """Ends a run_every loop from inside the work (run_every survives plain exceptions)."""


class FakeTime:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


class TestSchedule:
    def test_first_offset_is_within_one_interval(self) -> None:
        """The first run is at a random offset in [0, interval)."""
        rng = random.Random(7)
        offsets = [FixedRateSchedule(2.0, now=0.0, rng=rng).due for _ in range(1000)]
        assert all(0.0 <= o < 2.0 for o in offsets)

    def test_thousand_checks_spread_out(self) -> None:
        """1000 checks on one interval land spread over it, not in one bunch."""
        rng = random.Random(1)
        offsets = [FixedRateSchedule(1.0, now=0.0, rng=rng).due for _ in range(1000)]
        per_tenth = [sum(1 for o in offsets if k / 10 <= o < (k + 1) / 10) for k in range(10)]
        assert max(per_tenth) < 150
        assert min(per_tenth) > 50

    def test_advance_is_fixed_rate(self) -> None:
        """The next run is due one interval after the previous due time, not after the work."""
        schedule = FixedRateSchedule(5.0, now=100.0, offset=1.0)
        assert schedule.due == 101.0
        assert schedule.advance(now=103.9) == 0
        assert schedule.due == 106.0

    def test_overrun_skips_missed_ticks(self) -> None:
        """A run that overran two ticks skips them instead of replaying them in a burst."""
        schedule = FixedRateSchedule(1.0, now=0.0, offset=0.0)
        assert schedule.advance(now=2.5) == 2
        assert schedule.due == 3.0

    def test_rejects_non_positive_interval(self) -> None:
        """A zero interval is an error, not a busy loop."""
        with pytest.raises(ValueError, match="positive"):
            FixedRateSchedule(0.0, now=0.0)

    async def test_run_every_does_not_drift(self) -> None:
        """Work that takes time does not push later runs back."""
        clock = FakeTime()
        dues: list[float] = []

        async def work(due: float) -> None:
            dues.append(due)
            clock.now += 0.3
            if len(dues) == 5:
                raise _Stop

        with pytest.raises(_Stop):
            await run_every(1.0, work, name="t", clock=clock, sleep=clock.sleep, offset=0.5)
        assert dues == [1000.5, 1001.5, 1002.5, 1003.5, 1004.5]

    async def test_run_every_survives_a_crashing_run(self) -> None:
        """An exception in one run is logged and the schedule goes on."""
        clock = FakeTime()
        runs = 0

        async def work(_due: float) -> None:
            nonlocal runs
            runs += 1
            if runs == 1:
                raise RuntimeError("bug")
            raise _Stop

        with pytest.raises(_Stop):
            await run_every(1.0, work, name="t", clock=clock, sleep=clock.sleep, offset=0.0)
        assert runs == 2


class TestSelector:
    def test_plain_name(self) -> None:
        """A bare name matches that metric with any labels."""
        selector = Selector.parse("http_requests_total")
        assert selector.matches("http_requests_total", {"status": "200"})
        assert not selector.matches("http_requests", {})

    @pytest.mark.parametrize(
        ("text", "labels", "expected"),
        [
            ('m{status="500"}', {"status": "500"}, True),
            ('m{status="500"}', {"status": "200"}, False),
            ('m{status!="500"}', {"status": "200"}, True),
            ('m{status=~"5.."}', {"status": "503"}, True),
            ('m{status=~"5.."}', {"status": "1503"}, False),  # anchored, as in PromQL
            ('m{status!~"5.."}', {"status": "200"}, True),
            ('m{status=""}', {}, True),  # a missing label matches as ""
            ("m{status='500', handler=\"api\",}", {"status": "500", "handler": "api"}, True),
            ('m{path="a\\"b"}', {"path": 'a"b'}, True),
        ],
    )
    def test_matchers(self, text: str, labels: dict[str, str], expected: bool) -> None:
        """Label matchers follow PromQL: =, !=, =~ and !~ with anchored regexes."""
        assert Selector.parse(text).matches("m", labels) is expected

    @pytest.mark.parametrize("text", ["", "m{status}", 'm{status=="5"}', 'm{a=~"("}', "9bad"])
    def test_rejects_bad_selectors(self, text: str) -> None:
        """A malformed selector is a ValueError that quotes it."""
        with pytest.raises(ValueError):  # noqa: PT011 - the message varies by mistake
            Selector.parse(text)


def _series(
    name: str, value: float, **labels: str
) -> tuple[tuple[str, frozenset[tuple[str, str]]], float]:
    return (name, frozenset(labels.items())), value


def _scrape_source(**fields: str) -> ScrapeSource:
    check = parse(ScrapeCheck, {"name": "s", "type": "scrape", "url": "http://x", **fields})
    return ScrapeSource(check, sink=None, client=None)  # type: ignore[arg-type]


class TestCounterDeltas:
    def test_first_scrape_is_baseline(self) -> None:
        """The first scrape only sets the baseline."""
        deltas = CounterDeltas()
        key, _ = _series("c", 0)
        assert deltas.update({key: 10.0}) == {key: 0.0}
        assert deltas.update({key: 15.0}) == {key: 5.0}

    def test_reset_counts_new_value(self) -> None:
        """A counter that went down was reset: its new value is the delta."""
        deltas = CounterDeltas()
        key, _ = _series("c", 0)
        deltas.update({key: 100.0})
        assert deltas.update({key: 3.0}) == {key: 3.0}

    def test_a_restart_resets_every_series(self) -> None:
        """When one counter goes down the process restarted: a series that grew past its old
        value still counts from 0, so histogram buckets keep nesting."""
        deltas = CounterDeltas()
        fast, _ = _series("h_bucket", 0, le="0.1")
        total, _ = _series("h_bucket", 0, le="+Inf")
        deltas.update({fast: 100.0, total: 130.0})
        assert deltas.update({fast: 40.0, total: 140.0}) == {fast: 40.0, total: 140.0}

    def test_late_series_counts_from_zero(self) -> None:
        """A series first seen after the first scrape started at 0 since the last scrape."""
        deltas = CounterDeltas()
        old, _ = _series("c", 0, status="200")
        new, _ = _series("c", 0, status="500")
        deltas.update({old: 10.0})
        assert deltas.update({old: 12.0, new: 4.0}) == {old: 2.0, new: 4.0}

    def test_vanished_series_is_not_counted_twice(self) -> None:
        """A series that disappears and comes back keeps its last value."""
        deltas = CounterDeltas()
        key, _ = _series("c", 0)
        deltas.update({key: 10.0})
        deltas.update({})
        assert deltas.update({key: 11.0}) == {key: 1.0}


class TestScrapeIngest:
    def test_requests_and_errors(self) -> None:
        """Request and error deltas are summed over the matching series."""
        source = _scrape_source(
            requests="http_requests_total", errors='http_requests_total{status=~"5.."}'
        )
        first = dict(
            [
                _series("http_requests_total", 10, status="200"),
                _series("http_requests_total", 1, status="500"),
                _series("other_total", 99),
            ]
        )
        assert source.ingest(first) is None
        second = dict(
            [
                _series("http_requests_total", 17, status="200"),
                _series("http_requests_total", 3, status="500"),
                _series("http_requests_total", 2, status="503"),
                _series("other_total", 500),
            ]
        )
        result = source.ingest(second)
        assert result is not None
        assert (result.requests, result.errors) == (11, 4)

    def test_no_requests_series_is_unavailable(self) -> None:
        """A scrape without any requests series is unknown and leaves the baseline alone."""
        source = _scrape_source(requests="req_total")
        source.ingest(dict([_series("req_total", 10)]))
        with pytest.raises(SourceUnavailable, match="no series matches"):
            source.ingest(dict([_series("other_total", 1)]))
        result = source.ingest(dict([_series("req_total", 12)]))
        assert result is not None
        assert result.requests == 2

    def test_errors_never_exceed_requests(self) -> None:
        """A scrape between the two counter bumps cannot report more errors than requests."""
        source = _scrape_source(requests="req_total", errors="err_total")
        source.ingest(dict([_series("req_total", 10), _series("err_total", 5)]))
        result = source.ingest(dict([_series("req_total", 10), _series("err_total", 6)]))
        assert result is not None
        assert (result.requests, result.errors) == (0, 0)

    def test_histogram_buckets_become_latencies(self) -> None:
        """Bucket deltas, summed by le across label sets, are reported at the lower bound
        (known only to be above it); +Inf observations at the highest finite bound."""
        source = _scrape_source(requests="req_total", latency_histogram="lat_seconds")

        def scrape(api: list[float], health: list[float], requests: float) -> dict:
            out = dict([_series("req_total", requests)])
            for handler, counts in (("api", api), ("health", health)):
                for le, count in zip(("0.1", "0.5", "+Inf"), counts, strict=True):
                    out.update([_series("lat_seconds_bucket", count, handler=handler, le=le)])
                out.update([_series("lat_seconds_count", counts[-1], handler=handler)])
            return out

        source.ingest(scrape([1, 2, 3], [5, 5, 5], 8))
        # api: +2 in (0, 0.1], +1 in (0.1, 0.5], +1 above 0.5; health: +1 in (0.1, 0.5]
        result = source.ingest(scrape([3, 5, 7], [5, 6, 6], 12))
        assert result is not None
        assert result.latencies == ((0.0, 2), (0.1, 2), (0.5, 1))
        assert result.bounds == (0.1, 0.5)

    def test_histogram_selector_filters_label_sets(self) -> None:
        """Label matchers on latency_histogram pick which histograms count."""
        source = _scrape_source(requests="r", latency_histogram='lat_seconds{handler="api"}')
        base = dict(
            [
                _series("r", 0),
                _series("lat_seconds_bucket", 0, handler="api", le="1"),
                _series("lat_seconds_bucket", 0, handler="x", le="1"),
            ]
        )
        source.ingest(base)
        result = source.ingest(
            dict(
                [
                    _series("r", 1),
                    _series("lat_seconds_bucket", 2, handler="api", le="1"),
                    _series("lat_seconds_bucket", 9, handler="x", le="1"),
                ]
            )
        )
        assert result is not None
        assert result.latencies == ((0.0, 2),)


class TestAuthSubstitution:
    def test_substitute_only_known_names(self) -> None:
        """{name} of an extracted value is replaced; JSON braces and unknown names stay."""
        values = {"token": "abc"}
        assert substitute("Bearer {token}", values) == "Bearer abc"
        assert substitute('{"a": 1} {other}', values) == '{"a": 1} {other}'

    def test_substitute_json_recurses(self) -> None:
        """Strings nested in dicts and lists are substituted; other values are kept."""
        values = {"id": "7"}
        document = {"a": ["x{id}", {"b": "{id}"}], "n": 3, "t": True}
        assert substitute_json(document, values) == {"a": ["x7", {"b": "7"}], "n": 3, "t": True}

    def test_lookup_dotted_path(self) -> None:
        """Dotted paths walk dict keys and list indexes."""
        document = {"a": {"b": [{"c": "deep"}, {"c": "second"}]}}
        assert lookup(document, "a.b.0.c") == "deep"
        assert lookup(document, "a.b.-1.c") == "second"
        assert lookup(document, "a.b.5.c") is MISSING
        assert lookup(document, "a.x") is MISSING


class TestPromqlParsing:
    def test_scalar_and_single_vector(self) -> None:
        """A scalar or a one-sample vector is the value."""
        scalar = b'{"status":"success","data":{"resultType":"scalar","result":[1,"2.5"]}}'
        vector = (
            b'{"status":"success","data":{"resultType":"vector",'
            b'"result":[{"metric":{},"value":[1,"7"]}]}}'
        )
        assert parse_query_response(200, scalar) == 2.5
        assert parse_query_response(200, vector) == 7.0

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b'{"status":"success","data":{"resultType":"vector","result":[]}}', "no series"),
            (
                b'{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},'
                b'{"value":[1,"2"]}]}}',
                "2 series",
            ),
            (b'{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}', "nan"),
            (b'{"status":"error","errorType":"bad_data","error":"parse error"}', "bad_data"),
            (b'{"status":"success","data":{"resultType":"matrix","result":[]}}', "matrix"),
            (b"<html>", "without JSON"),
        ],
    )
    def test_everything_else_is_unavailable(self, body: bytes, reason: str) -> None:
        """Empty, ambiguous, NaN, error and non-JSON answers raise SourceUnavailable."""
        with pytest.raises(SourceUnavailable, match=reason):
            parse_query_response(400, body)


class TestContainerVerdicts:
    @staticmethod
    def _state(status: str, health: str | None = None, **extra: object) -> ContainerState:
        data = {
            "Id": "c1",
            "Name": "/web",
            "RestartCount": 2,
            "State": {"Status": status, "ExitCode": 137, "OOMKilled": True, **extra},
        }
        if health:
            data["State"]["Health"] = {"Status": health}  # type: ignore[index]
        return ContainerState.from_inspect(data)

    @pytest.mark.parametrize(
        ("status", "health", "ok"),
        [
            ("running", None, True),
            ("running", "healthy", True),
            ("running", "unhealthy", False),
            ("running", "starting", None),
            ("restarting", None, False),
            ("exited", "unhealthy", False),
            ("paused", "healthy", False),
            ("dead", None, False),
        ],
    )
    def test_verdict(self, status: str, health: str | None, ok: bool | None) -> None:
        """Running (and not unhealthy) is ok; starting is not judged; the rest fail."""
        assert self._state(status, health).ok is ok

    def test_detail_names_exit_code_restarts_and_oom(self) -> None:
        """A failure detail carries restart count, exit code and the OOM kill."""
        detail = self._state("exited").detail
        assert "web" in detail
        assert "restarts 2" in detail
        assert "exit code 137" in detail
        assert "OOM" in detail

    def test_selectors(self) -> None:
        """Name, compose and swarm selectors match the right containers."""
        by_name = ContainerSelector("container", "web")
        compose = ContainerSelector("compose", "web", "shop")
        swarm = ContainerSelector("swarm", "api")
        labels = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}
        assert by_name.matches("/web", {})
        assert not by_name.matches("/web-1", {})
        assert compose.matches("/x", labels)
        assert not compose.matches("/x", {**labels, "com.docker.compose.oneoff": "True"})
        assert swarm.matches("/api.1.xyz", {"com.docker.swarm.service.name": "api"})
        assert swarm.counts("running")
        assert not swarm.counts("exited")
        assert by_name.counts("exited")
        assert (by_name.key, compose.key, swarm.key) == (
            "container:web",
            "compose:shop/web",
            "swarm:api",
        )

    def test_selector_for_target(self) -> None:
        """A target's selector follows its kind; a release dir has none."""
        target = parse(TargetConfig, {"name": "t", "compose": {"project": "p", "service": "s"}})
        assert ContainerSelector.for_target(target) == ContainerSelector("compose", "s", "p")
        target = parse(TargetConfig, {"name": "t", "release_dir": {"path": "/srv/app"}})
        assert ContainerSelector.for_target(target) is None


class TestRedaction:
    def test_redact_longest_first(self) -> None:
        """Secrets are replaced, longest first; very short values are left alone."""
        assert redact("pw hunter2hunter2 hunter2 ab", {"hunter2", "hunter2hunter2", "ab"}) == (
            "pw *** *** ab"
        )

    def test_describe_error_never_quotes_the_url(self) -> None:
        """Error reasons come from the error class and errno, never the message with the URL."""
        key = aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None)
        refused = aiohttp.ClientConnectorError(key, ConnectionRefusedError(errno.ECONNREFUSED, "x"))
        assert describe_error(refused) == "connection failed (connection refused)"
        assert describe_error(TimeoutError()) == "timeout"
        assert describe_error(ValueError("http://x/?token=SECRET")) == "ValueError"
