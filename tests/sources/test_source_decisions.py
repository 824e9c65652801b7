"""What sources and the recorder tell the gates: whose fault a failure is, overlapping probes,
waiting probes as evidence, honest histogram bounds, and the gates every config implies."""

from __future__ import annotations

import asyncio
import errno

import aiohttp
import pytest

from watchdogd.config.schema import TargetConfig
from watchdogd.config.validation import parse
from watchdogd.core.gates import Gate, GateMetric, GateSpec, Verdict
from watchdogd.sources.outcome import path_fault
from watchdogd.sources.schedule import run_every
from watchdogd.sources.scrape import threshold_warnings
from watchdogd.watch.recorder import CheckRecorder


def connector_error(code: int) -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("app", 80, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, OSError(code, "x"))


class TestWhoseFault:
    @pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
    def test_local_resources_are_unknown(self, code: int) -> None:
        """watchdogd's own limits say nothing about the target."""
        reason = path_fault(connector_error(code))
        assert reason is not None
        assert "watchdogd's own resources" in reason
        assert path_fault(OSError(code, "x")) is not None

    def test_unreachable_network_is_unknown(self) -> None:
        """No route from watchdogd is the path's fault."""
        reason = path_fault(connector_error(errno.ENETUNREACH))
        assert reason is not None
        assert "no route" in reason

    @pytest.mark.parametrize("code", [errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH])
    def test_target_faults_are_failures(self, code: int) -> None:
        """Refused, reset, host gone: the target's fault."""
        assert path_fault(connector_error(code)) is None

    def test_timeout_is_a_failure(self) -> None:
        assert path_fault(TimeoutError()) is None


class TestOverlap:
    async def test_slow_runs_do_not_delay_the_next(self) -> None:
        """With overlap 3, runs that take five intervals still start every interval, never
        more than three at a time."""
        running = 0
        most = 0
        started = 0
        enough = asyncio.Event()

        async def work(_due: float) -> None:
            nonlocal running, most, started
            running += 1
            started += 1
            most = max(most, running)
            if started >= 8:
                enough.set()
            try:
                await asyncio.sleep(0.25)
            finally:
                running -= 1

        task = asyncio.create_task(run_every(0.05, work, name="t", offset=0.0, overlap=3))
        await asyncio.wait_for(enough.wait(), 60)  # a generous bound, not a timing assertion
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert most == 3


class TestWaitingProbes:
    def test_waiting_probe_counts_past_the_threshold(self) -> None:
        """A probe sent and not answered is a sample above each threshold it has passed;
        its answer replaces it."""
        recorder = CheckRecorder("t", "c", "http", 300.0, thresholds=(2.0,))
        for t in range(30):
            recorder.probe(float(t), True, 0.05)
        token = recorder.probe_started(30.0)
        assert recorder.stats(31.0).slow == (0,)
        assert recorder.stats(32.5).slow == (1,)
        assert recorder.stats(32.5).seen == (31,)
        recorder.probe(33.0, True, 3.0, token=token)
        stats = recorder.stats(33.5)
        assert (stats.slow, stats.seen) == ((1,), (31,))

    def test_evidence_hook(self) -> None:
        """Failures and slow answers call on_evidence; fast successes do not."""
        recorder = CheckRecorder("t", "c", "http", 300.0, thresholds=(2.0,))
        calls: list[float] = []
        recorder.on_evidence = lambda: calls.append(1.0)
        recorder.probe(1.0, True, 0.1)
        recorder.probe(2.0, False, None)
        recorder.probe(3.0, True, 2.5)
        assert len(calls) == 2


class TestHistogramBounds:
    def test_threshold_inside_a_bucket_warns_with_neighbours(self) -> None:
        """2 s between the default buckets 1 and 2.5 is named with both; 2.5 is fine."""
        buckets = (0.5, 1.0, 2.5, 5.0)
        [warning] = threshold_warnings(buckets, (2.0, 2.5))
        assert "(1s, 2.5s]" in warning
        assert "le=1 or le=2.5" in warning

    def test_lower_bounds_cannot_breach_a_gate_inside_a_bucket(self) -> None:
        """Every request in (1, 2.5] with a 2 s gate: not slow (cannot breach falsely)."""
        recorder = CheckRecorder("t", "c", "scrape", 300.0, thresholds=(2.0,))
        for t in range(60):
            recorder.counts(float(t), 5, 0)
            recorder.latency(float(t), 1.0, 5, above=True)
        gate = Gate(GateSpec(name="p95", metric=GateMetric.LATENCY_P95, above=2.0))
        assert gate.evaluate(recorder.stats(60.0), 60.0).verdict is Verdict.OK


class TestImpliedGates:
    def test_every_http_check_gates_its_failures(self) -> None:
        """An http check without a rate gate gets failure_rate above 1 %; one with its own
        keeps it; other checks get nothing."""
        target = parse(
            TargetConfig,
            {
                "name": "api",
                "container": "api",
                "checks": [
                    {"name": "a", "type": "http", "url": "http://x/"},
                    {"name": "b", "type": "http", "url": "http://x/"},
                    {"name": "h", "type": "container_health"},
                ],
                "gates": [
                    {"check": "a", "metric": "latency_p95", "above": "2s"},
                    {"check": "b", "metric": "error_rate", "above": "5%"},
                ],
                "warmup": "30s",
            },
        )
        assert [(g.check, g.metric.value, g.above) for g in target.gates] == [
            ("a", "latency_p95", 2.0),
            ("b", "error_rate", 0.05),
            ("a", "failure_rate", 0.01),
        ]
        assert target.latency_thresholds("a") == (2.0,)
        assert target.latency_thresholds("b") == ()
        assert target.warmup == 30.0
