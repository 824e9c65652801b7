"""HAProxy's Runtime API, over the admin stats socket.

The socket (``stats socket PATH mode 600 level admin``) is a Unix stream socket that takes one
command line per connection and closes when its reply is complete, so every call opens a new
connection: nothing is shared, and a restarted HAProxy is simply reached again on the next call.

HAProxy replies in free text with no status code. Each command is therefore sent behind
``set severity-output number``, which makes HAProxy prefix its messages with their syslog
severity (``[3]: No such server.``): a severity of 3 (error) or less is a refusal and raises
:class:`~watchdogd.errors.TrafficError`, as does an unknown command. Callers that know the one
reply that means success (``add server``, ``del server``) check it too.

Nothing here retries: retrying with backoff is the job of
:func:`watchdogd.traffic.split.apply_split`, which knows what a whole switch is. Every call is
bounded by ``timeout``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import time
from dataclasses import dataclass
from typing import Literal

from watchdogd.errors import TrafficError

# HAProxy's own rule for proxy and server names; checking it keeps a name from smuggling a second
# command (";" or a newline) into the line.
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
_ADDRESS = re.compile(r"[0-9A-Za-z.:-]+")
_SEVERITY = re.compile(r"^\[(\d)\]: ?")
_REFUSAL_SEVERITY = 3  # LOG_ERR: errors are 0..3, 4 and above are warnings and notices
_MAX_REPLY = 16 * 1024 * 1024
_IDLE_POLL = 0.05

ServerState = Literal["ready", "drain", "maint"]


@dataclass(frozen=True)
class ServerStatus:
    """One server line of ``show stat``.

    ``weight`` is the weight the operator set (``uweight``; HAProxy's effective ``weight`` column
    drops to 0 while a server drains). ``state`` is HAProxy's status column as it prints it:
    "UP", "DOWN", "MAINT", "DRAIN", "no check", "UP 1/3" (going down), "MAINT (via b/s)", ...
    ``admin_maint`` is true while the server is in maintenance (by the API or the config's
    ``disabled``), whatever its health. ``response_time_ms`` and ``total_time_ms`` are HAProxy's
    averages over the server's last 1024 requests (``rtime``/``ttime``), None before any.
    """

    backend: str
    name: str
    address: str | None
    port: int | None
    weight: int
    state: str
    admin_maint: bool
    requests_total: int
    responses_5xx: int
    current_sessions: int
    queued: int = 0
    response_time_ms: int | None = None
    total_time_ms: int | None = None
    check_status: str = ""

    @property
    def admin_drain(self) -> bool:
        """Drained by the API (``set server ... state drain``): no new requests."""
        return self.state.startswith("DRAIN")

    @property
    def confirmed_up(self) -> bool:
        """Up as far as HAProxy knows: a server without health checks ("no check"), or one that
        is UP and has been checked at least once (a ``disabled`` slot that was never checked
        shows ``INI`` until its first check, though HAProxy marks it UP when it leaves
        maintenance).

        HAProxy pauses checks during maintenance and, when the server leaves it, restores the
        last result from before: a server kept long in maintenance is judged on old news. A
        server to switch back to is kept drained instead (``TrafficSplit.standby``), where its
        checks keep running.
        """
        if self.state == "no check":
            return True
        check = self.check_status.removeprefix("* ")
        return self.state.startswith("UP") and check not in ("", "INI")


class HAProxyRuntime:
    """A client of one HAProxy's Runtime API socket."""

    def __init__(self, socket_path: str | os.PathLike[str], *, timeout: float = 2.0) -> None:
        self.socket_path = os.fspath(socket_path)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HAProxyRuntime({self.socket_path!r})"

    async def execute(self, command: str) -> str:
        """Run one command; return its reply without severity prefixes or surrounding blank lines.

        Raises :class:`TrafficError` when the socket cannot be reached or does not answer within
        ``timeout`` (``unreachable`` is true), or when HAProxy refuses the command.
        """
        if "\n" in command or "\r" in command or ";" in command:
            raise TrafficError(command, "one command per call: no newline or ';'")
        try:
            raw = await asyncio.wait_for(self._exchange(command), self.timeout)
        except TimeoutError:
            raise TrafficError(
                command,
                f"no reply from {self.socket_path} within {self.timeout:g} s",
                unreachable=True,
            ) from None
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise TrafficError(
                command, f"cannot reach {self.socket_path}: {reason}", unreachable=True
            ) from None
        return _check_reply(command, raw)

    async def _exchange(self, command: str) -> str:
        reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=_MAX_REPLY)
        try:
            writer.write(f"set severity-output number; {command}\n".encode())
            await writer.drain()
            data = await reader.read(_MAX_REPLY)
            chunks = [data]
            while data:
                data = await reader.read(_MAX_REPLY)
                chunks.append(data)
        finally:
            writer.close()
        return b"".join(chunks).decode("utf-8", errors="replace")

    async def servers(self, backend: str) -> dict[str, ServerStatus]:
        """The servers of ``backend`` by name, as ``show stat`` reports them right now."""
        _check_name(backend)
        text = await self.execute(f"show stat {backend} 4 -1")
        return parse_servers(text, backend)

    async def info(self) -> dict[str, str]:
        """``show info``: process-wide facts (``Pid``, ``Uptime_sec``, ``DroppedLogs``, ...)."""
        text = await self.execute("show info")
        fields: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        return fields

    async def add_server(self, backend: str, name: str, address: str, port: int) -> None:
        """Register a dynamic server at weight 0; HAProxy starts it in maintenance."""
        _check_name(backend, name)
        _check_address(f"add server {backend}/{name}", address, port)
        where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        command = f"add server {backend}/{name} {where} weight 0"
        reply = await self.execute(command)
        if "New server registered" not in reply:
            raise TrafficError(command, reply or "no confirmation from HAProxy")

    async def set_address(self, backend: str, name: str, address: str, port: int) -> None:
        """Point a server at ``address:port`` (a container's published port moved). HAProxy
        answers in a notice either way: only "changed" or "no need to change" is success."""
        _check_name(backend, name)
        _check_address(f"set server {backend}/{name} addr", address, port)
        command = f"set server {backend}/{name} addr {address} port {port}"
        reply = await self.execute(command)
        if "Invalid" in reply or not ("changed" in reply or "no need to change" in reply):
            raise TrafficError(command, reply or "no confirmation from HAProxy")

    async def set_weight(self, backend: str, name: str, weight: int) -> None:
        _check_name(backend, name)
        if not 0 <= weight <= 256:
            raise TrafficError(f"set server {backend}/{name} weight", "weight must be 0..256")
        await self._expect_silence(f"set server {backend}/{name} weight {weight}")

    async def set_state(self, backend: str, name: str, state: ServerState) -> None:
        _check_name(backend, name)
        if state not in ("ready", "drain", "maint"):
            raise TrafficError(f"set server {backend}/{name} state", f"unknown state {state!r}")
        await self._expect_silence(f"set server {backend}/{name} state {state}")

    async def delete_server(self, backend: str, name: str) -> None:
        """Put a dynamic server in maintenance and remove it. HAProxy refuses while it still
        has connections: call :meth:`wait_idle` first."""
        _check_name(backend, name)
        await self.set_state(backend, name, "maint")
        command = f"del server {backend}/{name}"
        reply = await self.execute(command)
        if "Server deleted" not in reply:
            raise TrafficError(command, reply or "no confirmation from HAProxy")

    async def wait_idle(self, backend: str, name: str, *, timeout: float) -> bool:
        """Wait until the server has no current sessions and no queued requests; False when it
        still has some after ``timeout`` seconds. A server that is gone counts as idle."""
        deadline = time.monotonic() + timeout
        while True:
            status = (await self.servers(backend)).get(name)
            if status is None or (status.current_sessions == 0 and status.queued == 0):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_IDLE_POLL)

    async def _expect_silence(self, command: str) -> None:
        # `set server` answers nothing when it did what was asked; any text is a complaint
        # (some come at severity "notice", e.g. a weight on a server without `weight` support).
        reply = await self.execute(command)
        if reply:
            raise TrafficError(command, reply)


def _check_name(*names: str) -> None:
    for name in names:
        if not _NAME.match(name):
            raise TrafficError(f"name {name!r}", "HAProxy names use only A-Z a-z 0-9 _ . : -")


def _check_address(command: str, address: str, port: int) -> None:
    # An address is one token of the command line: nothing in it may start another.
    if not 0 < port < 65536 or not _ADDRESS.fullmatch(address):
        raise TrafficError(command, f"bad address {address}:{port}")


def _check_reply(command: str, raw: str) -> str:
    lines: list[str] = []
    for raw_line in raw.splitlines():
        line = raw_line
        match = _SEVERITY.match(raw_line)
        if match is not None:
            line = raw_line[match.end() :]
            if int(match.group(1)) <= _REFUSAL_SEVERITY:
                raise TrafficError(command, line.strip() or "refused")
        if line.startswith("Unknown command"):
            raise TrafficError(command, "unknown command (is the socket at `level admin`?)")
        if line.startswith("Permission denied"):
            raise TrafficError(command, "permission denied: the stats socket needs `level admin`")
        lines.append(line)
    return "\n".join(lines).strip("\n")


def parse_servers(text: str, backend: str) -> dict[str, ServerStatus]:
    """The server rows of ``show stat`` CSV for ``backend`` (pure: the tests feed it text)."""
    header, _, body = text.lstrip("# ").partition("\n")
    rows = csv.DictReader(io.StringIO(body), fieldnames=header.split(","))
    found: dict[str, ServerStatus] = {}
    for row in rows:
        name = row.get("svname") or ""
        if row.get("pxname") != backend or name in ("", "FRONTEND", "BACKEND"):
            continue
        address, port = _split_address(row.get("addr") or "")
        status = row.get("status") or ""
        found[name] = ServerStatus(
            backend=backend,
            name=name,
            address=address,
            port=port,
            weight=_int(row.get("uweight") or row.get("weight")),
            state=status,
            admin_maint=status.startswith("MAINT"),
            # req_tot counts HTTP requests; a TCP-mode backend has only sessions (stot).
            requests_total=_int(row.get("req_tot"))
            if row.get("req_tot")
            else _int(row.get("stot")),
            responses_5xx=_int(row.get("hrsp_5xx")),
            current_sessions=_int(row.get("scur")),
            queued=_int(row.get("qcur")),
            response_time_ms=_int(row["rtime"]) if row.get("rtime") else None,
            total_time_ms=_int(row["ttime"]) if row.get("ttime") else None,
            check_status=row.get("check_status") or "",
        )
    return found


def _split_address(addr: str) -> tuple[str | None, int | None]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        return None, None
    return host.strip("[]"), int(port)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0
