"""HAProxy's per-request log as a source for ``decision_sim.py``: the daemon's own ingest path.

What is real: each simulated request becomes a log line in watchdogd's ``log-format``
(``traffic.log_line.LOG_FORMAT``) inside an RFC 3164 syslog header, written to a Unix datagram
socket; ``HAProxyLogReceiver._on_readable`` reads and parses it and calls the deploy's sink,
``deploy.windows.TrafficWindows``, whose window green's gates judge with
``deploy.windows.TrafficJudge`` (``config.traffic.TrafficGate`` specs: the default
``error_rate above 1%`` and a user's ``latency_p95 above 2s``). The window is the one the
deploy's bake builds: ``TrafficWindows.watch`` with the gates' latency thresholds and
``traffic.window``'s default span (30 minutes), empty at the switch.

What is simulated: the clock, and lost datagrams. HAProxy drops a line when watchdogd's socket
queue is full (``DroppedLogs``); such a request never reaches the window, so a drop is a
missing sample, never an error. ``drop`` is the share of lines lost at random,
``drop_bursts`` (every, length) loses every line for ``length`` seconds every ``every``
seconds (a stalled loop, a full queue).

The deploy evaluates its gates every 50 ms (``BAKE_TICK``); the engine evaluates when an error
or a slow request arrives (at most once per ``BAKE_TICK``) and on a 1 s tick, which sees the
same crossings: a share only rises when a bad sample arrives or a second leaves the window.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from functools import partial

from sim_engine import Feed, Outcome, Service, _judge, _requests

from watchdogd.config.base import config_keys
from watchdogd.config.traffic import (
    DEFAULT_TRAFFIC_GATES,
    TRAFFIC_LATENCY_METRICS,
    TrafficConfig,
    TrafficGate,
)
from watchdogd.config.validation import parse
from watchdogd.core.gates import GateResult
from watchdogd.deploy.bake import BAKE_TICK
from watchdogd.deploy.windows import TrafficJudge, TrafficWindows
from watchdogd.traffic.log_receiver import HAProxyLogReceiver

__all__ = ["LogPath", "simulate_log", "traffic_gates"]

BACKEND, SERVER = "app", "green"
#: Green's window of user traffic as the deploy builds it (``traffic.window``, 30 min).
WINDOW: float = config_keys(TrafficConfig)["window"].default
_HEADER = b"<134>Nov 30 13:28:47 haproxy[9675]: " + f"{BACKEND}/{SERVER}".encode() + b" "


def traffic_gates(latency_above: float = 2.0) -> list[TrafficGate]:
    """The default traffic gate and the latency gate a user adds beside it."""
    latency = parse(TrafficGate, {"metric": "latency_p95", "above": latency_above})
    return [*DEFAULT_TRAFFIC_GATES, latency]


class LogPath:
    """One release's requests through the log socket into its window (module docstring)."""

    def __init__(self, gates: list[TrafficGate], span: float = WINDOW) -> None:
        self.now = 0.0
        self.windows = TrafficWindows(span=span)
        # As TrafficConfig.latency_thresholds and the deploy's bake build green's window.
        thresholds = sorted(
            {g.above for g in gates if g.above is not None and g.metric in TRAFFIC_LATENCY_METRICS}
        )
        self.traffic = self.windows.watch(BACKEND, SERVER, thresholds, span)
        self.judge = TrafficJudge(gates)
        self._send, receive = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        receive.setblocking(False)
        self.receiver = HAProxyLogReceiver("unused.sock", self.windows, clock=self._clock)
        # The receiver binds its own socket in start(); the simulation hands it one end of a
        # socket pair instead, so that its read loop and parser run unchanged.
        self.receiver._sock = receive
        self._slow = thresholds[0] if thresholds else None
        self.dropped = 0

    def _clock(self) -> float:
        return self.now

    def deliver(self, at: float, ok: bool, latency: float) -> bool:
        """A request that ended at ``at``: its log line is read at ``at``. True when it is
        evidence (an error or a latency above the gates' smallest threshold)."""
        status = b"200" if ok else b"503"
        ms = str(round(latency * 1000)).encode()
        self._send.send(_HEADER + status + b" " + ms + b" " + ms + b" ----\n")
        self.now = at
        self.receiver._on_readable()
        return not ok or (self._slow is not None and latency > self._slow)

    def drop(self) -> None:
        self.dropped += 1

    def evaluate(self, now: float) -> list[GateResult]:
        return self.judge.evaluate(self.traffic, now)

    def close(self) -> None:
        self._send.close()
        sock = self.receiver._sock
        if sock is not None:
            sock.close()


def dropped(rng_random: Callable[[], float], feed: Feed, at: float) -> bool:
    """Whether the line of a request ending at ``at`` is lost (``Feed.drop``, ``drop_bursts``)."""
    if feed.drop_bursts is not None:
        every, length = feed.drop_bursts
        if at % every < length:
            return True
    return feed.drop > 0.0 and rng_random() < feed.drop


def simulate_log(
    service: Service,
    feed: Feed,
    seconds: float,
    rng: random.Random,
    *,
    change: float | None,
) -> Outcome:
    """``sim_engine.simulate`` for the ``log`` feed: requests in order of completion through
    :class:`LogPath`, judged on an error or slow request (at most every ``BAKE_TICK``) and on
    the 1 s tick."""
    path = LogPath(traffic_gates())
    outcome = Outcome(seconds=seconds)
    ends = sorted(
        (at + latency, ok, latency) for at, ok, latency in _requests(service, feed, seconds, rng)
    )
    breached, tick, i, judged = False, rng.random(), 0, -1.0
    judge = partial(_judge, path.evaluate, change=change)
    try:
        while tick <= seconds:
            while i < len(ends) and ends[i][0] < tick:
                at, ok, latency = ends[i]
                i += 1
                if dropped(rng.random, feed, at):
                    path.drop()
                elif path.deliver(at, ok, latency) and at - judged >= BAKE_TICK:
                    judged = at  # the deploy's loop looks every BAKE_TICK, not per request
                    breached = judge(at, was=breached, outcome=outcome)
                    if outcome.detected is not None:
                        return outcome
            breached = judge(tick, was=breached, outcome=outcome)
            if outcome.detected is not None:
                return outcome
            tick += 1.0
    finally:
        path.close()
    return outcome
