"""Session fixtures that run real services privately, on free 127.0.0.1 ports.

Each server runs in its own process group and its own temporary directory under /tmp;
the session teardown kills the group and removes the directory, so nothing is left
running. Set ``WATCHDOGD_TEST_KEEP_TMP=1`` to keep the directories (and logs).

Fixtures (all session-scoped):

* ``docker_engine`` -> ``docker.DockerClient`` (``docker.from_env()``, pinged). Its
  teardown removes the containers, services, networks and volumes this session labelled
  with :func:`tests.support.docker_labels`.
* ``redis_server`` -> :class:`RedisServer` (``url`` = ``redis://127.0.0.1:PORT/0``).
* ``postgres_server`` -> :class:`PostgresServer` (``dsn`` =
  ``postgresql://postgres@127.0.0.1:PORT/postgres``, trust auth).
* ``prometheus_factory(scrape_targets, scrape_interval="1s", ...)`` -> :class:`PrometheusServer`.
* ``alertmanager_factory(config_yaml=None)`` -> :class:`AlertmanagerServer`.

And one function-scoped helper: ``http_sink`` -> :class:`tests.support.sink.HttpSink`, a
recording HTTP server on 127.0.0.1 (webhook receiver, scrape target).

A missing binary or engine skips the tests that need it, or fails them when ``CI=true``
(see :func:`tests.support.require`). A binary that is present but fails to start always
fails, with the tail of its log in the message.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import docker
import httpx
import psycopg
import pytest
import yaml
from docker.errors import APIError, DockerException, NotFound

from tests.support import SESSION_ID, SESSION_LABEL, TEST_LABEL, is_stale_session, require
from tests.support.ports import free_port
from tests.support.sink import HttpSink

__all__ = [
    "AlertmanagerFactory",
    "AlertmanagerServer",
    "ManagedProcess",
    "PostgresServer",
    "PrometheusFactory",
    "PrometheusServer",
    "RedisServer",
    "alertmanager_factory",
    "docker_engine",
    "http_sink",
    "postgres_server",
    "prometheus_factory",
    "redis_server",
    "sweep_docker",
]

START_TIMEOUT = float(os.environ.get("WATCHDOGD_TEST_START_TIMEOUT", "60"))
START_ATTEMPTS = 3


# --------------------------------------------------------------------------- processes


def _http() -> httpx.Client:
    # trust_env=False: never send loopback traffic through a proxy from the environment.
    return httpx.Client(trust_env=False, timeout=2.0)


def _make_tmpdir(kind: str) -> Path:
    # Not tmp_path_factory: that one keeps old runs, is 0700 under /tmp/pytest-of-root (so
    # the postgres user could not enter it) and its paths can get too long for sockets.
    return Path(tempfile.mkdtemp(prefix=f"watchdogd-test-{kind}-"))


def _remove_tmpdir(path: Path) -> None:
    if os.environ.get("WATCHDOGD_TEST_KEEP_TMP") == "1":
        return
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class ManagedProcess:
    """A server process in its own process group, logging to ``log_path``."""

    name: str
    argv: list[str]
    log_path: Path
    cwd: Path
    stop_signal: signal.Signals = signal.SIGTERM
    user: str | None = None
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            kwargs: dict[str, Any] = {}
            if self.user is not None:
                entry = pwd.getpwnam(self.user)
                kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
                **kwargs,
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Signal the whole process group, wait, then SIGKILL whatever is left."""
        if self.popen is None:
            return
        pgid = self.popen.pid
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        # Children may outlive the leader: always sweep the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)


def _start_server(
    name: str,
    build: Callable[[int], ManagedProcess],
    ready: Callable[[int], bool],
    timeout: float = START_TIMEOUT,
) -> tuple[ManagedProcess, int]:
    """Start ``build(port)`` on a free port and wait until ``ready(port)``.

    Retries on a new port when the process dies early (e.g. the port was taken in the
    meantime); fails the test with the log tail when it never becomes ready.
    """
    failure = ""
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        proc = build(port)
        proc.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                break
            if ready(port):
                return proc, port
            time.sleep(0.1)
        hung = proc.alive()
        if hung:
            failure = f"{name} did not become ready on port {port} within {timeout:.0f} s"
        else:
            code = proc.popen.returncode if proc.popen else None
            failure = f"{name} exited with code {code} (attempt {attempt}, port {port})"
        failure += f"\n--- {proc.log_path} ---\n{proc.log_tail()}"
        proc.stop()
        if hung:
            break  # a hang is not a lost port race: do not retry
    pytest.fail(failure, pytrace=False)


def _http_ready(url: str) -> bool:
    try:
        with _http() as client:
            return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _binary(*candidates: str) -> str | None:
    for candidate in candidates:
        found = shutil.which(candidate) if "/" not in candidate else candidate
        if found and os.access(found, os.X_OK):
            return found
    return None


class _Cleanup:
    """Stops processes and removes directories in reverse order of registration."""

    def __init__(self) -> None:
        self._procs: list[ManagedProcess] = []
        self._dirs: list[Path] = []

    def proc(self, proc: ManagedProcess) -> ManagedProcess:
        self._procs.append(proc)
        return proc

    def tmpdir(self, kind: str) -> Path:
        path = _make_tmpdir(kind)
        self._dirs.append(path)
        return path

    def close(self) -> None:
        for proc in reversed(self._procs):
            proc.stop()
        for path in reversed(self._dirs):
            _remove_tmpdir(path)


# --------------------------------------------------------------------------- docker


def _swept(labels: dict[str, str] | None, *, stale_only: bool) -> bool:
    """Whether an object with these labels belongs to this session or to a dead one."""
    session = (labels or {}).get(SESSION_LABEL)
    if session == SESSION_ID:
        return not stale_only
    if session is None:
        # Labelled watchdogd.test=1 without a session: nobody to ask. Removed only at the
        # end of a session, and only while no other pytest runs here (it may be theirs).
        return not stale_only and not _other_pytest_running()
    return is_stale_session(session)


def _other_pytest_running() -> bool:
    """Whether a pytest process other than this one (or its ancestors) runs here."""
    mine: set[int] = set()
    pid = os.getpid()
    while pid > 1 and pid not in mine:
        mine.add(pid)
        try:
            stat = (Path("/proc") / str(pid) / "stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in mine:
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"pytest" in cmdline and b"/.ci/run" not in cmdline:
            return True
    return False


def sweep_docker(client: Any, *, stale_only: bool = False) -> list[str]:
    """Remove Docker objects labelled ``watchdogd.test=1`` that this session owns.

    With ``stale_only`` only objects of sessions whose pytest process is gone are removed
    (run at session start). Returns what was removed, e.g. ``["container wdt-1"]``.
    """
    removed: list[str] = []
    label_filter = {"label": f"{TEST_LABEL}=1"}

    swarm = client.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") == "active" and swarm.get("ControlAvailable"):
        for service in client.services.list(filters=label_filter):
            if _swept(service.attrs.get("Spec", {}).get("Labels"), stale_only=stale_only):
                with contextlib.suppress(NotFound, APIError):
                    service.remove()
                    removed.append(f"service {service.name}")
    for container in client.containers.list(all=True, filters=label_filter):
        if _swept(container.labels, stale_only=stale_only):
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True, v=True)
                removed.append(f"container {container.name}")
    for network in client.networks.list(filters=label_filter):
        if _swept(network.attrs.get("Labels"), stale_only=stale_only):
            with contextlib.suppress(NotFound, APIError):
                network.remove()
                removed.append(f"network {network.name}")
    for volume in client.volumes.list(filters=label_filter):
        if _swept(volume.attrs.get("Labels"), stale_only=stale_only):
            with contextlib.suppress(NotFound, APIError):
                volume.remove(force=True)
                removed.append(f"volume {volume.name}")
    if not stale_only:
        # Untagged leftovers of test images (e.g. after a retag); in-use ones stay.
        for image in client.images.list(filters={**label_filter, "dangling": True}):
            with contextlib.suppress(NotFound, APIError):
                client.images.remove(image.id)
                removed.append(f"image {image.short_id}")
    return removed


def _dangling_anonymous_volumes(client: Any) -> set[str]:
    volumes = client.api.volumes(filters={"dangling": True}).get("Volumes") or []
    return {
        v["Name"]
        for v in volumes
        if not set(v.get("Labels") or {}) - {"com.docker.volume.anonymous"}
        and len(v["Name"]) == 64
        and all(c in "0123456789abcdef" for c in v["Name"])
    }


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[docker.DockerClient]:
    """A ``docker.DockerClient`` for the local engine (``DOCKER_HOST`` or the socket)."""
    client = None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except (DockerException, OSError) as exc:
        if client is not None:
            client.close()
        require(False, f"a running Docker engine ({exc})")
    assert client is not None
    sweep_docker(client, stale_only=True)
    anonymous_before = _dangling_anonymous_volumes(client)
    try:
        yield client
    finally:
        leftovers = sweep_docker(client)
        # An anonymous volume carries no label: one a test's container left (a VOLUME or
        # Compose's `volumes: ["/data"]`) is found as new, unused and nameless.
        for name in sorted(_dangling_anonymous_volumes(client) - anonymous_before):
            with contextlib.suppress(NotFound, APIError):
                client.api.remove_volume(name)
                leftovers.append(f"volume {name[:12]}")
        if leftovers:
            print(f"\nwatchdogd tests: removed leftover Docker objects: {', '.join(leftovers)}")
        client.close()


# --------------------------------------------------------------------------- redis


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    url: str
    data_dir: Path
    pid: int


def _redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server (no persistence) on a free 127.0.0.1 port."""
    binary = _binary("redis-server", "/usr/bin/redis-server")
    require(binary, "the redis-server binary (Debian package redis-server)")
    assert binary is not None
    cleanup = _Cleanup()
    try:
        workdir = cleanup.tmpdir("redis")

        def build(port: int) -> ManagedProcess:
            argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            argv += ["--appendonly", "no", "--daemonize", "no", "--dir", str(workdir)]
            log = workdir / "redis.log"
            return cleanup.proc(ManagedProcess("redis-server", argv, log, workdir))

        proc, port = _start_server("redis-server", build, _redis_ready)
        yield RedisServer(
            host="127.0.0.1",
            port=port,
            url=f"redis://127.0.0.1:{port}/0",
            data_dir=workdir,
            pid=proc.pid,
        )
    finally:
        cleanup.close()


# --------------------------------------------------------------------------- postgres


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    dbname: str
    dsn: str
    data_dir: Path
    socket_dir: Path
    pid: int


def _postgres_bindir() -> Path | None:
    def version(path: str) -> float:
        try:
            return float(Path(path).parts[-3])
        except ValueError:
            return 0.0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _postgres_ready(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster (trust auth on 127.0.0.1) on a free port.

    As root it runs as the ``postgres`` system user (PostgreSQL refuses to run as root).
    """
    bindir = _postgres_bindir()
    require(bindir, "PostgreSQL server binaries (Debian package postgresql)")
    assert bindir is not None
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            require(False, "the 'postgres' system user (needed to run PostgreSQL as root)")
        run_as = "postgres"
    cleanup = _Cleanup()
    try:
        workdir = cleanup.tmpdir("postgres")
        data_dir, socket_dir = workdir / "data", workdir / "run"
        socket_dir.mkdir()
        ids: dict[str, Any] = {}
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            for path in (workdir, socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        initdb = [str(bindir / "initdb"), "-D", str(data_dir), "-U", "postgres"]
        initdb += ["--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"]
        result = subprocess.run(
            initdb, cwd=workdir, capture_output=True, text=True, check=False, **ids
        )
        if result.returncode != 0:
            pytest.fail(f"initdb failed:\n{result.stdout}\n{result.stderr}", pytrace=False)

        def dsn(port: int) -> str:
            return f"postgresql://postgres@127.0.0.1:{port}/postgres"

        def build(port: int) -> ManagedProcess:
            argv = [str(bindir / "postgres"), "-D", str(data_dir), "-p", str(port)]
            argv += ["-k", str(socket_dir), "-c", "listen_addresses=127.0.0.1"]
            for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
                argv += ["-c", setting]
            log = workdir / "postgres.log"  # opened by us, inherited by postgres
            # SIGINT = fast shutdown: open client connections do not hold it up.
            proc = ManagedProcess("postgres", argv, log, workdir, signal.SIGINT, user=run_as)
            return cleanup.proc(proc)

        proc, port = _start_server("postgres", build, lambda port: _postgres_ready(dsn(port)))
        yield PostgresServer(
            host="127.0.0.1",
            port=port,
            user="postgres",
            dbname="postgres",
            dsn=dsn(port),
            data_dir=data_dir,
            socket_dir=socket_dir,
            pid=proc.pid,
        )
    finally:
        cleanup.close()


# --------------------------------------------------------------------------- prometheus


@dataclass
class PrometheusServer:
    url: str
    port: int
    config_file: Path
    data_dir: Path
    pid: int
    _proc: ManagedProcess = field(repr=False)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The ``data.result`` of an instant query (``/api/v1/query``)."""
        with _http() as client:
            response = client.get(f"{self.url}/api/v1/query", params={"query": promql})
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        """Stop this instance now (the session teardown would otherwise)."""
        self._proc.stop()


class PrometheusFactory(Protocol):
    def __call__(
        self,
        scrape_targets: Sequence[str] = (),
        scrape_interval: str = "1s",
        *,
        metrics_path: str = "/metrics",
        rules_yaml: str | None = None,
        alertmanagers: Sequence[str] = (),
        evaluation_interval: str = "1s",
        extra_scrape_configs: Sequence[dict[str, Any]] = (),
        alert_resend_delay: str = "1s",
    ) -> PrometheusServer: ...


def _scrape_configs(targets: Sequence[str], metrics_path: str) -> list[dict[str, Any]]:
    """Group targets (``host:port`` or full URLs) into one job per scheme and path."""
    jobs: dict[tuple[str, str], list[str]] = {}
    for target in targets:
        if "://" in target:
            parts = urlsplit(target)
            key = (parts.scheme, parts.path or metrics_path)
            jobs.setdefault(key, []).append(parts.netloc)
        else:
            jobs.setdefault(("http", metrics_path), []).append(target)
    return [
        {
            "job_name": "targets" if index == 0 else f"targets-{index}",
            "scheme": scheme,
            "metrics_path": path,
            "static_configs": [{"targets": hosts}],
        }
        for index, ((scheme, path), hosts) in enumerate(jobs.items())
    ]


@pytest.fixture(scope="session")
def prometheus_factory() -> Iterator[PrometheusFactory]:
    """Start Prometheus instances: ``prometheus_factory(["127.0.0.1:8080"])``.

    Targets are ``host:port`` (scraped at ``metrics_path``) or full URLs such as
    ``http://127.0.0.1:32768/cgi-bin/metrics``. ``rules_yaml`` is a rule file's text;
    ``alertmanagers`` are ``host:port`` of Alertmanagers to send alerts to (resent every
    ``alert_resend_delay``). Each call
    starts a new instance (with ``--web.enable-lifecycle``) that runs until the session
    ends or its ``stop()``.
    """
    binary = _binary("/usr/bin/prometheus", "prometheus")
    require(binary, "the prometheus binary (Debian package prometheus)")
    assert binary is not None
    cleanup = _Cleanup()

    def start(
        scrape_targets: Sequence[str] = (),
        scrape_interval: str = "1s",
        *,
        metrics_path: str = "/metrics",
        rules_yaml: str | None = None,
        alertmanagers: Sequence[str] = (),
        evaluation_interval: str = "1s",
        extra_scrape_configs: Sequence[dict[str, Any]] = (),
        alert_resend_delay: str = "1s",
    ) -> PrometheusServer:
        workdir = cleanup.tmpdir("prometheus")
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": scrape_interval,
                # The default timeout (10 s) may not exceed a short interval.
                "scrape_timeout": scrape_interval,
                "evaluation_interval": evaluation_interval,
            },
            "scrape_configs": [
                *_scrape_configs(scrape_targets, metrics_path),
                *extra_scrape_configs,
            ],
        }
        if rules_yaml is not None:
            (workdir / "rules.yml").write_text(rules_yaml)
            config["rule_files"] = [str(workdir / "rules.yml")]
        if alertmanagers:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
            }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        data_dir = workdir / "data"

        def build(port: int) -> ManagedProcess:
            argv = [binary, f"--config.file={config_file}", f"--storage.tsdb.path={data_dir}"]
            argv += [f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"]
            # Prometheus drops alerts fired before its Alertmanagers are discovered (~5 s)
            # and resends only after this delay (default 1m).
            argv += [f"--rules.alert.resend-delay={alert_resend_delay}"]
            log = workdir / "prometheus.log"
            return cleanup.proc(ManagedProcess("prometheus", argv, log, workdir))

        proc, port = _start_server(
            "prometheus", build, lambda port: _http_ready(f"http://127.0.0.1:{port}/-/ready")
        )
        return PrometheusServer(
            url=f"http://127.0.0.1:{port}",
            port=port,
            config_file=config_file,
            data_dir=data_dir,
            pid=proc.pid,
            _proc=proc,
        )

    try:
        yield start
    finally:
        cleanup.close()


# --------------------------------------------------------------------------- alertmanager

DEFAULT_ALERTMANAGER_CONFIG = """\
route:
  receiver: "null"
receivers:
  - name: "null"
"""


@dataclass
class AlertmanagerServer:
    url: str
    port: int
    config_file: Path
    data_dir: Path
    pid: int
    _proc: ManagedProcess = field(repr=False)

    @property
    def address(self) -> str:
        """``host:port``, as Prometheus's ``alertmanagers`` targets want it."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop this instance now (the session teardown would otherwise)."""
        self._proc.stop()


class AlertmanagerFactory(Protocol):
    def __call__(self, config_yaml: str | None = None) -> AlertmanagerServer: ...


@pytest.fixture(scope="session")
def alertmanager_factory() -> Iterator[AlertmanagerFactory]:
    """Start Alertmanager instances (clustering off): ``alertmanager_factory(config_yaml)``.

    Without a config the single receiver is a no-op ``null`` receiver.
    """
    binary = _binary("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager", "alertmanager")
    require(binary, "the alertmanager binary (Debian package prometheus-alertmanager)")
    assert binary is not None
    cleanup = _Cleanup()

    def start(config_yaml: str | None = None) -> AlertmanagerServer:
        workdir = cleanup.tmpdir("alertmanager")
        config_file = workdir / "alertmanager.yml"
        config_file.write_text(
            config_yaml if config_yaml is not None else DEFAULT_ALERTMANAGER_CONFIG
        )
        data_dir = workdir / "data"
        data_dir.mkdir()

        def build(port: int) -> ManagedProcess:
            argv = [binary, f"--config.file={config_file}", f"--storage.path={data_dir}"]
            argv += [f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
            log = workdir / "alertmanager.log"
            return cleanup.proc(ManagedProcess("alertmanager", argv, log, workdir))

        proc, port = _start_server(
            "alertmanager", build, lambda port: _http_ready(f"http://127.0.0.1:{port}/-/ready")
        )
        return AlertmanagerServer(
            url=f"http://127.0.0.1:{port}",
            port=port,
            config_file=config_file,
            data_dir=data_dir,
            pid=proc.pid,
            _proc=proc,
        )

    try:
        yield start
    finally:
        cleanup.close()


# --------------------------------------------------------------------------- http sink


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    """A recording HTTP server on 127.0.0.1 for one test (see :mod:`tests.support.sink`)."""
    sink = HttpSink()
    try:
        yield sink
    finally:
        sink.close()
