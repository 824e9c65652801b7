"""A real HAProxy (Debian's ``haproxy`` 2.6) for the tests, with a generated config.

``haproxy_factory(servers, ...)`` starts ``haproxy -db`` (foreground) in its own process group
and temporary directory, with:

* a frontend on a free 127.0.0.1 port (``HAProxyServer.url``) whose default backend is
  ``backend`` (``"app"``), ``balance roundrobin`` so dynamic servers can be added at run time;
* one static ``server`` line per :class:`StaticServer` (a name, a port on 127.0.0.1, a weight,
  optionally ``disabled``: a slot in maintenance, as docs/blue-green.md suggests);
* the admin stats socket (``admin_socket``, ``level admin``) and, in ``global``, a ``log``
  line to the Unix datagram socket ``log_socket`` with watchdogd's ``log-format``
  (:data:`watchdogd.traffic.log_line.LOG_FORMAT`). Nothing listens there until a test binds
  it (HAProxy counts what it cannot send in ``show info``'s ``DroppedLogs``).

``restart()`` stops HAProxy and starts it again from the same config on the same ports: every
runtime change (weights, states, dynamic servers) is lost, as after a real restart.
``stop()`` leaves it stopped (the "unreachable" tests). Teardown stops it and removes the
directory (kept when ``WATCHDOGD_TEST_KEEP_TMP=1``). Without the binary the tests skip, or fail
under ``CI=true`` (:func:`tests.support.require`).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import require
from tests.support.ports import free_port, wait_port
from tests.support.services import START_TIMEOUT, ManagedProcess, _Cleanup
from watchdogd.traffic.log_line import LOG_FORMAT

__all__ = ["HAProxyFactory", "HAProxyServer", "StaticServer", "haproxy_factory"]


@dataclass(frozen=True)
class StaticServer:
    """A ``server`` line: ``NAME 127.0.0.1:PORT weight WEIGHT [disabled] [check ...]``.

    ``check`` adds a fast TCP health check (every 200 ms, one failure marks it down).
    """

    name: str
    port: int
    weight: int = 100
    disabled: bool = False
    check: bool = False

    def line(self) -> str:
        return (
            f"server {self.name} 127.0.0.1:{self.port} weight {self.weight}"
            + (" disabled" if self.disabled else "")
            + (" check inter 200ms fall 1 rise 1" if self.check else "")
        )


def render_config(
    *,
    admin_socket: Path,
    log_socket: Path,
    port: int,
    backend: str,
    servers: Sequence[StaticServer],
    log_length: int = 1024,
) -> str:
    """The config file: what docs/blue-green.md's "HAProxy configuration" section asks for."""
    server_lines = "\n".join(f"    {server.line()}" for server in servers)
    return f"""\
global
    stats socket {admin_socket} mode 600 level admin
    log {log_socket} len {log_length} local0 info
    maxconn 4096

defaults
    mode http
    log global
    log-format "{LOG_FORMAT}"
    option dontlognull
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 0

frontend web
    bind 127.0.0.1:{port}
    default_backend {backend}

backend {backend}
    balance roundrobin
{server_lines}
"""


@dataclass
class HAProxyServer:
    """One running HAProxy. ``url`` is its frontend; ``admin_socket`` its Runtime API."""

    binary: str
    workdir: Path
    port: int
    backend: str
    admin_socket: Path
    log_socket: Path
    config_path: Path
    _proc: ManagedProcess | None = field(default=None, repr=False)
    _starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.alive() else None

    def start(self) -> None:
        self._starts += 1
        log = self.workdir / f"haproxy-{self._starts}.log"
        self._proc = ManagedProcess(
            "haproxy", [self.binary, "-db", "-f", str(self.config_path)], log, self.workdir
        )
        self._proc.start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self._proc.alive():
                break
            if _admin_ready(self.admin_socket) and wait_port(self.port):
                return
            time.sleep(0.05)
        tail = self._proc.log_tail()
        self._proc.stop()
        pytest.fail(f"haproxy did not start on port {self.port}\n--- {log} ---\n{tail}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None
        # A killed HAProxy leaves its socket file behind; a client must see "refused".
        with contextlib.suppress(FileNotFoundError):
            self.admin_socket.unlink()

    def restart(self) -> None:
        """Stop and start again: runtime changes are forgotten, the ports stay."""
        self.stop()
        self.start()

    def command(self, line: str) -> str:
        """Send one Runtime API command synchronously (for test setup and assertions)."""
        return _admin(self.admin_socket, line)


def _admin(path: Path, line: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        sock.connect(str(path))
        sock.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def _admin_ready(path: Path) -> bool:
    try:
        return "Pid:" in _admin(path, "show info")
    except OSError:
        return False


HAProxyFactory = Callable[..., HAProxyServer]


@pytest.fixture
def haproxy_factory() -> Iterator[HAProxyFactory]:
    """Start HAProxy instances: ``haproxy_factory([StaticServer("blue", 8081)])``.

    Keyword arguments: ``backend`` (default ``"app"``), ``log_length`` (the ``len`` of the
    ``log`` line), ``template`` (a whole config instead of the generated one, with
    ``{admin_socket}``, ``{log_socket}`` and ``{port}`` to fill in). Each instance runs until
    the test ends.
    """
    binary = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    require(binary, "the haproxy binary (Debian package haproxy)")
    assert binary is not None
    cleanup = _Cleanup()
    started: list[HAProxyServer] = []

    def start(
        servers: Sequence[StaticServer] = (),
        *,
        backend: str = "app",
        log_length: int = 1024,
        template: str | None = None,
    ) -> HAProxyServer:
        workdir = cleanup.tmpdir("haproxy")
        for _attempt in range(3):
            port = free_port()
            server = HAProxyServer(
                binary=binary,
                workdir=workdir,
                port=port,
                backend=backend,
                admin_socket=workdir / "admin.sock",
                log_socket=workdir / "log.sock",
                config_path=workdir / "haproxy.cfg",
            )
            if template is not None:
                text = template.format(
                    admin_socket=server.admin_socket, log_socket=server.log_socket, port=port
                )
            else:
                text = render_config(
                    admin_socket=server.admin_socket,
                    log_socket=server.log_socket,
                    port=port,
                    backend=backend,
                    servers=servers,
                    log_length=log_length,
                )
            server.config_path.write_text(text)
            check = subprocess.run(
                [binary, "-c", "-q", "-f", str(server.config_path)],
                capture_output=True,
                text=True,
                check=False,
            )
            if check.returncode != 0:
                pytest.fail(f"generated haproxy config is invalid:\n{check.stdout}{check.stderr}")
            if wait_port(port):
                continue  # taken meanwhile: pick another
            server.start()
            started.append(server)
            return server
        pytest.fail("no free port for haproxy after 3 attempts")

    try:
        yield start
    finally:
        for server in started:
            server.stop()
        cleanup.close()
