"""The Docker Engine as the target drivers see it: async calls that raise only ``TargetError``.

docker-py is blocking, so every call runs in a worker thread (``asyncio.to_thread``) and the
event loop keeps probing while a container stops. Every docker-py, requests and socket error
is wrapped at this edge. The low-level ``APIClient`` is used on purpose: it posts the create
body verbatim, where the high-level ``containers.create`` takes only its own keyword arguments
(REFERENCE.md). The client is built lazily, in a worker thread, because building it negotiates
the API version over the socket: constructing a ``DockerEngine`` never touches the engine.

This module is the one place that makes docker-py clients (``DockerEngine`` for the daemon,
``sdk_client`` for the demo's image builds) and the one text of an engine error (``explain``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import docker
import requests
from docker.errors import DockerException, NotFound

from watchdogd.errors import ObjectMissing, TargetError
from watchdogd.model import ExecResult

T = TypeVar("T")

DEFAULT_HOST = "unix:///var/run/docker.sock"
# Exec output kept for the caller; a runaway migration log must not fill the journal.
EXEC_OUTPUT_LIMIT = 64 * 1024
# A ``kill`` event's signal that ends the process, by number or name: a SIGHUP or SIGUSR1
# sent with ``docker kill -s`` asks the app to reload, not to stop.
ENDING_SIGNALS = frozenset(
    {"2", "3", "9", "15", "INT", "QUIT", "KILL", "TERM", "SIGINT", "SIGQUIT", "SIGKILL", "SIGTERM"}
)


class DockerEngine:
    """One connection pool to one engine, shared by every driver of the daemon."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        timeout: float = 10.0,
        client: Any = None,
        *,
        version: str = "auto",
    ) -> None:
        self.host = host
        self.timeout = timeout
        self.version = version  # "auto" negotiates; a known one skips that round trip
        self._client: Any = client
        self._lock = threading.Lock()

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = docker.APIClient(
                    base_url=self.host, version=self.version, timeout=math.ceil(self.timeout)
                )
            return self._client

    def call_blocking(self, what: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(api_client)`` here, in the caller's thread (the event watcher's own);
        docker, HTTP and socket errors become ``TargetError`` (``ObjectMissing`` for a 404)
        whose message starts with ``what``. Building the client counts as part of the call."""
        try:
            return fn(self._api())
        except NotFound as err:
            raise ObjectMissing(f"{what}: {explain(err)}") from err
        except (DockerException, requests.RequestException, OSError) as err:
            raise TargetError(f"{what}: {explain(err)}") from err

    async def call(self, what: str, fn: Callable[[Any], T]) -> T:
        """``call_blocking`` in a worker thread: the event loop keeps running."""
        return await asyncio.to_thread(self.call_blocking, what, fn)

    async def api_version(self) -> tuple[int, int]:
        version = await self.call("docker version", lambda api: str(api.api_version))
        major, _, minor = version.partition(".")
        return int(major), int(minor or 0)

    async def inspect_container(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.call(
                f"inspect container {name}", lambda api: dict(api.inspect_container(name))
            )
        except ObjectMissing:
            return None

    async def inspect_image(self, ref: str) -> dict[str, Any] | None:
        try:
            return await self.call(f"inspect image {ref}", lambda api: dict(api.inspect_image(ref)))
        except ObjectMissing:
            return None

    async def list_containers(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Every container (running or not) carrying all of ``labels``."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        return await self.call(
            "list containers",
            lambda api: [dict(c) for c in api.containers(all=True, filters=filters)],
        )

    async def names_starting(self, prefix: str) -> list[str]:
        """Names of every container whose name starts with ``prefix``."""
        # The engine's name filter is an unanchored regex; anchor and check it here.
        found = await self.call(
            "list containers",
            lambda api: api.containers(all=True, filters={"name": prefix}),
        )
        names = {str(n).lstrip("/") for c in found for n in c.get("Names") or []}
        return sorted(n for n in names if n.startswith(prefix))

    async def create(self, body: dict[str, Any], name: str) -> str:
        # Posted verbatim: ``create_container`` would rebuild the body from keyword arguments
        # and, with ``use_config_proxy``, add the client's proxy settings to the env.
        result = await self.call(
            f"create container {name}",
            lambda api: api.create_container_from_config(body, name=name),
        )
        return str(result["Id"])

    async def connect(self, container: str, network: str, endpoint: dict[str, Any]) -> None:
        ipam = endpoint.get("IPAMConfig") or {}
        await self.call(
            f"connect {container} to network {network}",
            lambda api: api.connect_container_to_network(
                container,
                network,
                ipv4_address=ipam.get("IPv4Address") or None,
                ipv6_address=ipam.get("IPv6Address") or None,
                link_local_ips=ipam.get("LinkLocalIPs") or None,
                aliases=endpoint.get("Aliases"),
                links=[tuple(link.split(":", 1)) for link in endpoint.get("Links") or []] or None,
                driver_opt=endpoint.get("DriverOpts"),
            ),
        )

    async def start(self, container: str) -> None:
        await self.call(f"start container {container}", lambda api: api.start(container))

    async def stop(self, container: str, timeout: float) -> None:
        # The engine takes whole seconds; round up so a 0.5 s grace is not 0 s.
        seconds = max(0, math.ceil(timeout))
        await self.call(
            f"stop container {container}", lambda api: api.stop(container, timeout=seconds)
        )

    async def stop_requested(self, container: str, since: float) -> bool:
        """Whether somebody asked the engine to stop ``container`` since ``since`` (Unix
        seconds): a ``stop`` event (``docker stop``, ``docker compose stop``) or a ``kill``
        with a signal that ends a process (``docker kill``). A crash has neither. Read from
        the engine's replay buffer (its last 256 events, lost when it restarts), bounded by
        now so that the call returns at once: an older stop is not found, and reads as a
        crash."""
        params = {
            "since": f"{since:.9f}",
            "until": f"{time.time():.9f}",
            "filters": {"container": [container], "event": ["kill", "stop"]},
        }

        def replay(api: Any) -> list[dict[str, Any]]:
            try:
                return [dict(event) for event in api.events(decode=True, **params)]
            finally:
                _forget_pools(api, "/events?")

        what = f"events of container {container}"
        try:
            # The events stream has no read timeout of its own (docker-py streams it with none).
            events = await asyncio.wait_for(self.call(what, replay), self.timeout)
        except TimeoutError as err:
            raise TargetError(f"{what}: no result after {self.timeout:g} s") from err
        return any(
            event.get("status") == "stop"
            or str((event.get("Actor") or {}).get("Attributes", {}).get("signal", ""))
            in ENDING_SIGNALS
            for event in events
        )

    async def rename(self, container: str, name: str) -> None:
        await self.call(
            f"rename container {container} to {name}", lambda api: api.rename(container, name)
        )

    async def remove(self, container: str, *, force: bool = False) -> None:
        """Remove a container and keep its anonymous volumes (a successor may mount them)."""
        await self.call(
            f"remove container {container}",
            lambda api: api.remove_container(container, v=False, force=force),
        )

    async def remove_volume(self, name: str) -> None:
        """Remove a volume; the engine refuses (``TargetError``) one a container still uses."""
        await self.call(f"remove volume {name}", lambda api: api.remove_volume(name))

    async def logs_tail(self, container: str, lines: int = 20) -> str:
        try:
            raw = await self.call(
                f"logs of {container}", lambda api: api.logs(container, tail=lines)
            )
        except TargetError:
            return ""
        return bytes(raw).decode(errors="replace").strip()

    async def exec(
        self,
        container: str,
        command: Sequence[str],
        *,
        user: str | None,
        workdir: str | None,
        env: dict[str, str] | None,
        timeout: float,
    ) -> ExecResult:
        """``docker exec``; on timeout the command keeps running in the container (the API has
        no way to kill an exec), but the caller gets its ``TargetError`` on time."""
        what = f"exec {list(command)!r} in {container}"

        def run(api: Any) -> ExecResult:
            created = api.exec_create(
                container,
                list(command),
                user=user or "",
                workdir=workdir,
                environment=env or None,
            )
            output = bytes(api.exec_start(created["Id"]))
            exit_code = api.exec_inspect(created["Id"]).get("ExitCode")
            text = output[-EXEC_OUTPUT_LIMIT:].decode(errors="replace")
            return ExecResult(exit_code=-1 if exit_code is None else int(exit_code), output=text)

        try:
            return await asyncio.wait_for(self.call(what, run), timeout)
        except TimeoutError as err:
            raise TargetError(f"{what}: no result after {timeout:g} s") from err

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def sdk_client(host: str, timeout: float) -> docker.DockerClient:
    """docker-py's high-level client (``images.build``, ``containers.run``), for the demo's
    stage; connects at once (version negotiation), so ``DockerException`` may come from here."""
    return docker.DockerClient(base_url=host, version="auto", timeout=math.ceil(timeout))


def _forget_pools(api: Any, marker: str) -> None:
    """Close the connection pools of every URL containing ``marker``. docker-py keeps one pool
    per full URL, query string included, for a Unix socket, and each keeps its connection
    open until 25 newer URLs push it out: a URL never asked again (the events replay's, with
    its times) would each hold a socket open and push out the pools of the URLs the targets
    use again and again (30 replays left 24 sockets open)."""
    for adapter in api.adapters.values():
        pools = getattr(adapter, "pools", None)
        if pools is None:
            continue  # a TCP engine's pools are per host: nothing piles up
        # keys(), not iteration: urllib3's container refuses to iterate, keys() copies them.
        for url in [url for url in pools.keys() if marker in str(url)]:  # noqa: SIM118
            with contextlib.suppress(KeyError):
                del pools[url]  # its dispose function closes the pool


def explain(err: BaseException) -> str:
    """The one text of an engine error, for the drivers and the health watcher alike: the
    engine's own sentence where it gave one (``APIError.explanation``), else the first line of
    the message (docker-py's others nest the whole request), else the exception's class."""
    explanation = getattr(err, "explanation", None)
    if explanation:
        text = str(explanation.decode() if isinstance(explanation, bytes) else explanation)
    else:
        text = str(err)
    first = text.splitlines()[0][:200] if text else ""
    return first or type(err).__name__
