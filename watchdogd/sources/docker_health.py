"""Container health, from the Docker engine: one watcher for the whole daemon.

:class:`DockerHealthWatcher` follows the engine's events and backs them with polling. Each
subscription pairs a :class:`ContainerSelector` (container name, compose project/service or
swarm service) with a :class:`SampleSink`, which gets ``probe`` samples without latency:

* per matching container, at each poll and after its ``start``/``restart``/``health_status``
  events: running and ``healthy`` (or without a HEALTHCHECK) is ok; ``unhealthy``,
  ``restarting``, ``paused``, ``exited``, ``dead``, ``created`` are not. The detail names the
  state, health, restart count, exit code and an OOM kill. No container at all fails too.
* health ``starting`` gives no sample: not judged yet. Without ``--live-restore`` containers
  restart with the engine and sit in ``starting`` until their first healthcheck, so an engine
  restart is not a breach.
* ``die`` and ``oom`` events fail at once, even if a restart policy revives the container
  before the next poll; a restart count that grew with no ``die`` seen (events lost while
  disconnected) is one failure. Swarm's finished task containers are history, not replicas.

Events *and* polling: the engine replays only 256 events and drops events for a subscriber
that does not read within 100 ms (REFERENCE.md). Events are fast; the poll is the truth.

While the engine is unreachable every subscription gets ``unknown`` at each reconnection
attempt, never a failure: the engine is a third party, the containers may be fine. Reconnects
back off exponentially (tenacity, capped at ``poll_interval``), then re-list and re-inspect.
A stopping engine still answers on open connections while it stops the containers, so a
failure is only reported after a ping over a *new* connection succeeds; if it fails, the
failure is the engine's shutdown: ``unknown``.

docker-py blocks: a dedicated thread reads the event stream into the loop with
``call_soon_threadsafe``; every other call runs in ``asyncio.to_thread``. The client and the
error texts are ``engine.docker_api``'s (a ``DockerEngine`` of the watcher's own, so that the
event stream holds no connection the drivers need); its ``TargetError`` becomes
``SourceUnavailable`` here. ``on_change(key)``
is called on ``create``, ``start``, ``destroy`` and ``rename`` of a matching container, so the
daemon can look for a new release.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from watchdogd.config.schema import DockerSettings, TargetConfig
from watchdogd.engine.docker_api import DockerEngine, explain
from watchdogd.errors import ObjectMissing, SourceUnavailable, TargetError
from watchdogd.sources.base import SampleSink
from watchdogd.sources.schedule import Clock, StateChangeLog

T = TypeVar("T")
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"
SWARM_SERVICE = "com.docker.swarm.service.name"
EVENTS = ("health_status", "die", "oom", "restart", "start", "destroy", "create", "rename")
CHANGE_EVENTS = frozenset({"create", "start", "destroy", "rename"})
INSPECT_EVENTS = frozenset({"start", "restart", "health_status"})
FINISHED_STATES = frozenset({"exited", "dead", "created"})


@dataclass(frozen=True)
class ContainerSelector:
    """Which containers a subscription watches. ``kind`` is container, compose or swarm."""

    kind: str
    name: str  # the container name, the compose service or the swarm service
    project: str = ""  # compose only

    @classmethod
    def for_target(cls, target: TargetConfig) -> ContainerSelector | None:
        """The selector of a container, compose or swarm target; None for a release dir."""
        if target.container:
            return cls("container", target.container)
        if target.compose:
            return cls("compose", target.compose.service, target.compose.project)
        return cls("swarm", target.swarm.service) if target.swarm else None

    @property
    def key(self) -> str:  # container:web, compose:shop/web or swarm:web
        return f"compose:{self.project}/{self.name}" if self.project else f"{self.kind}:{self.name}"

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if self.kind == "container":
            return name.lstrip("/") == self.name
        if self.kind == "compose":
            return (
                labels.get(COMPOSE_PROJECT) == self.project
                and labels.get(COMPOSE_SERVICE) == self.name
                and labels.get(COMPOSE_ONEOFF, "False") != "True"  # `compose run` one-offs
            )
        return labels.get(SWARM_SERVICE) == self.name

    def counts(self, state: str) -> bool:
        """Whether a matching container in ``state`` is one of the target's replicas."""
        return self.kind != "swarm" or state not in FINISHED_STATES


@dataclass(frozen=True)
class ContainerState:
    """What one ``inspect`` says about a container, and the verdict on it."""

    id: str
    name: str
    status: str  # running, restarting, paused, exited, dead, created, removing
    health: str | None  # starting, healthy, unhealthy; None without a HEALTHCHECK
    restart_count: int
    exit_code: int
    oom_killed: bool

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any]) -> ContainerState:
        state = data.get("State") or {}
        health, name = (state.get("Health") or {}).get("Status"), str(data.get("Name", ""))
        restarts, code = int(data.get("RestartCount") or 0), int(state.get("ExitCode") or 0)
        status, oom = str(state.get("Status", "")), bool(state.get("OOMKilled"))
        return cls(str(data.get("Id", "")), name.lstrip("/"), status, health, restarts, code, oom)

    @property
    def ok(self) -> bool | None:
        """True healthy, False not, None for "not judged yet" (health ``starting``)."""
        if self.status != "running":
            return False
        return None if self.health == "starting" else self.health != "unhealthy"

    @property
    def detail(self) -> str:
        health = f", health {self.health}" if self.health else ""
        code = f", exit code {self.exit_code}" if self.status != "running" else ""
        oom = ", OOM killed" if self.oom_killed else ""
        return f"{self.name}: {self.status}{health}, restarts {self.restart_count}{code}{oom}"


Found = dict[ContainerSelector, list[ContainerState]]
Outcome = tuple[ContainerSelector, bool, str]  # (subscription, ok, detail)
_RESYNC = object()  # queue marker: re-list now (a subscription was added)


class DockerHealthWatcher:
    """The daemon's one watcher of container health. ``run`` until cancelled."""

    def __init__(
        self,
        settings: DockerSettings,
        *,
        on_change: Callable[[str], None] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings
        self.on_change = on_change
        cap = max(settings.poll_interval, 0.5)  # never wait longer than a poll between tries
        self._backoff = tenacity.wait_exponential(0.5, max=cap) + tenacity.wait_random(0, 0.5)
        self._clock = clock
        self._subscriptions: dict[ContainerSelector, list[SampleSink]] = {}
        self._client: DockerEngine | None = None
        self._queue: asyncio.Queue[Any] | None = None
        # Restart counts at the last look, and the containers whose die was reported since
        # then (so that one crash is not reported twice), per (subscription, container id).
        self._restarts: dict[tuple[ContainerSelector, str], int] = {}
        self._died: set[tuple[ContainerSelector, str]] = set()
        self._engine = StateChangeLog("docker_engine_unreachable", "docker_engine_back")

    def subscribe(self, selector: ContainerSelector, sink: SampleSink) -> None:
        self._subscriptions.setdefault(selector, []).append(sink)
        if self._queue is not None:
            self._queue.put_nowait(_RESYNC)

    def unsubscribe(self, selector: ContainerSelector, sink: SampleSink) -> None:
        sinks = [s for s in self._subscriptions.pop(selector, []) if s is not sink]
        if sinks:
            self._subscriptions[selector] = sinks

    async def run(self) -> None:
        """Connect, watch, and on any disconnect report unknown and reconnect; forever."""
        try:
            while True:
                await self._connect()
                try:
                    await self._watch()
                except SourceUnavailable as err:
                    self._engine_down(str(err))
        finally:
            await self.aclose()

    async def poll_once(self) -> None:
        """List and inspect every subscription now and report (or report unknown)."""
        try:
            if self._client is None:
                self._client = await asyncio.to_thread(self._open_client)
            await self._resync()
            self._engine.ok()
        except SourceUnavailable as err:
            self._engine_down(str(err))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    async def _connect(self) -> None:
        retrying = tenacity.AsyncRetrying(
            wait=self._backoff,
            retry=tenacity.retry_if_exception_type(SourceUnavailable),
            before_sleep=self._retrying,
        )
        async for attempt in retrying:
            with attempt:
                await self.aclose()
                self._client = await asyncio.to_thread(self._open_client)

    def _retrying(self, retry: tenacity.RetryCallState) -> None:
        self._engine_down(str(retry.outcome.exception() if retry.outcome else "unreachable"))

    async def _watch(self) -> None:
        """Follow events and poll until the engine goes away (raises SourceUnavailable)."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stream = await asyncio.to_thread(self._open_events)
        # Started before the first list, so nothing that happens after the list is missed.
        follow = (stream, asyncio.get_running_loop(), queue)
        threading.Thread(target=_follow, args=follow, name="docker-events", daemon=True).start()
        self._queue = queue
        try:
            await self._resync()
            self._engine.ok()
            due = self._clock() + self.settings.poll_interval
            while True:
                try:
                    async with asyncio.timeout(max(0.0, due - self._clock())):
                        item = await queue.get()
                except TimeoutError:
                    item = _RESYNC
                    due = max(due + self.settings.poll_interval, self._clock())
                if isinstance(item, BaseException):
                    raise SourceUnavailable(f"event stream ended: {explain(item)}")
                await (self._resync() if item is _RESYNC else self._on_event(item))
        finally:
            self._queue = None
            # Unblocks the stream thread, which then exits without touching the loop.
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stream.close)

    def _open_client(self) -> DockerEngine:
        client = DockerEngine(self.settings.host, self.settings.timeout)
        try:  # builds the client (negotiating the version), then pings
            _engine_call(client, f"docker engine at {self.settings.host}", lambda api: api.ping())
        except SourceUnavailable:
            client.close()
            raise
        return client

    def _open_events(self) -> Any:
        filters = {"type": ["container"], "event": list(EVENTS)}
        return _engine_call(
            self._require_client(),
            "docker events",
            lambda api: api.events(decode=True, filters=filters),
        )

    def _scan(self, selectors: list[ContainerSelector]) -> Found:
        """List once, inspect each matching container once (inspect p50 is 0.8 ms)."""
        client = self._require_client()
        listed = _engine_call(client, "docker list", lambda api: api.containers(all=True))
        found: Found = {s: [] for s in selectors}
        inspected: dict[str, ContainerState | None] = {}
        for summary in listed:
            name, labels = (summary.get("Names") or [""])[0], summary.get("Labels") or {}
            for selector in (s for s in selectors if s.matches(name, labels)):
                cid = str(summary["Id"])
                if cid not in inspected:
                    inspected[cid] = self._inspect(cid)
                state = inspected[cid]
                if state is not None and selector.counts(state.status):
                    found[selector].append(state)
        return found

    def _inspect(self, container_id: str) -> ContainerState | None:
        client = self._require_client()
        try:
            data = _engine_call(
                client, "docker inspect", lambda api: api.inspect_container(container_id)
            )
        except ObjectMissing:
            return None  # removed between the list and the inspect
        return ContainerState.from_inspect(data)

    def _confirm_engine(self) -> None:
        """Ping over a new connection: on SIGTERM the engine closes its listener first, then
        stops the containers while open connections (our pool, the events) still answer."""
        known = self._require_client()
        version = _engine_call(known, "docker version", lambda api: str(api.api_version))
        fresh = DockerEngine(self.settings.host, self.settings.timeout, version=version)
        try:
            _engine_call(fresh, "docker engine is shutting down", lambda api: api.ping())
        finally:
            fresh.close()

    def _require_client(self) -> DockerEngine:
        if self._client is None:
            raise SourceUnavailable("not connected to the docker engine")
        return self._client

    async def _resync(self) -> None:
        if not self._subscriptions:
            return
        found = await asyncio.to_thread(self._scan, list(self._subscriptions))
        outcomes: list[Outcome] = []
        for selector, states in found.items():
            if not states:
                outcomes.append((selector, False, f"no container matches {selector.key}"))
            for state in states:
                outcomes += self._judge(selector, state)
        await self._report(outcomes)

    def _judge(self, selector: ContainerSelector, state: ContainerState) -> list[Outcome]:
        outcomes: list[Outcome] = []
        seen = (selector, state.id)
        previous = self._restarts.get(seen)
        self._restarts[seen] = state.restart_count
        if previous is not None and state.restart_count > previous and seen not in self._died:
            outcomes.append((selector, False, f"{state.name}: restarted since the last look"))
        self._died.discard(seen)
        if state.ok is not None:
            outcomes.append((selector, state.ok, "" if state.ok else state.detail))
        return outcomes

    async def _on_event(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("Action") or event.get("status") or "").split(":", 1)[0].strip()
        actor = event.get("Actor") or {}
        attributes: Mapping[str, str] = actor.get("Attributes") or {}
        container_id, name = str(actor.get("ID") or ""), attributes.get("name", "")
        matched = [s for s in self._subscriptions if s.matches(name, attributes)]
        if kind in CHANGE_EVENTS and self.on_change is not None:
            for selector in matched:
                self.on_change(selector.key)
        if kind == "destroy":  # forget it, or container churn would grow the maps forever
            self._restarts = {k: v for k, v in self._restarts.items() if k[1] != container_id}
        outcomes: list[Outcome] = []
        if matched and kind in ("die", "oom"):
            code = attributes.get("exitCode", "?")
            reason = "out of memory" if kind == "oom" else f"exit code {code}"
            for selector in matched:
                self._died.add((selector, container_id))
                outcomes.append((selector, False, f"{name}: died ({reason})"))
        elif matched and kind in INSPECT_EVENTS:
            state = await asyncio.to_thread(self._inspect, container_id)
            for selector in matched:
                if state is not None and selector.counts(state.status):
                    outcomes += self._judge(selector, state)
        await self._report(outcomes)

    async def _report(self, outcomes: list[Outcome]) -> None:
        if any(not ok for _, ok, _ in outcomes):
            await asyncio.to_thread(self._confirm_engine)
        now = self._clock()
        for selector, ok, detail in outcomes:
            for sink in self._subscriptions.get(selector, []):
                sink.probe(now, ok, None, detail)

    def _engine_down(self, reason: str) -> None:
        self._engine.failing(reason)
        now = self._clock()
        for sink in (sink for sinks in self._subscriptions.values() for sink in sinks):
            sink.unknown(now, f"docker engine unreachable: {reason}")


def _follow(stream: Any, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
    """The stream thread: events into the loop at once (a slow reader loses them), then the
    end of the stream as an exception, meaning "reconnect"."""
    end: BaseException = ConnectionError("closed by the engine")
    try:
        for event in stream:
            loop.call_soon_threadsafe(queue.put_nowait, event)
    except Exception as err:  # whatever broke the stream, the answer is to reconnect
        end = err
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
        loop.call_soon_threadsafe(queue.put_nowait, end)


def _engine_call(client: DockerEngine, what: str, call: Callable[[Any], T]) -> T:
    """The engine adapter's errors, as a source reports them: unreachable is unknown data
    (``SourceUnavailable``, same text); ``ObjectMissing`` (a 404) is container news."""
    try:
        return client.call_blocking(what, call)
    except ObjectMissing:
        raise
    except TargetError as err:
        raise SourceUnavailable(str(err)) from err
