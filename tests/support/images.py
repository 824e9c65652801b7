"""The test application images and helpers to run them.

``app_images`` (session fixture) builds three tags of one tiny image, FROM scratch with
Debian's static busybox, from ``tests/images/app``::

    app_images.v1   ok      every endpoint answers normally
    app_images.v2   500     /api, /health, /login, /me and /logout answer HTTP 500
    app_images.v3   slow    /api, /login, /me and /logout answer after APP_SLOW_SECONDS (3 s)

The repository is ``watchdogd-test/app-<session id>`` so that concurrent pytest sessions on
one engine do not delete each other's tags; read the references from the fixture
(``app_images.v1`` ...), never spell them out. The tags are removed at session end.

The app is busybox ``httpd -f -p 8080 -h /www`` (under a shell that exits on SIGTERM, so
``docker stop`` is immediate). busybox runs CGI only under ``/cgi-bin/``, so the URLs are:

========================  =================================================================
``GET /cgi-bin/health``   200 ``{"status":"ok","version":"v1","mode":"ok"}``;
                          500 in mode ``500``; 503 in mode ``unhealthy``
``GET /cgi-bin/api``      200 ``{"ok":true,"version":"v1","items":[1,2,3]}``;
                          500 in mode ``500``; delayed in mode ``slow``
``POST /cgi-bin/login``   200 ``{"access_token":"tok-<hex>","token_type":"Bearer",
                          "expires_in":3600}`` for any body not containing ``wrong``
                          (else 401); 401 in mode ``authfail``; 405 for other methods
``GET /cgi-bin/me``       with ``Authorization: Bearer tok-...`` from login: 200
                          ``{"user":"tester","version":"v1"}``; otherwise or in mode
                          ``authfail`` 401
``POST /cgi-bin/logout``  with the bearer token: revokes it, 200 ``{"ok":true}``; else 401
``GET /cgi-bin/metrics``  Prometheus text: ``http_requests_total{handler,status}``,
                          ``http_request_duration_seconds`` histogram (by handler, 10 ms
                          resolution), ``app_version_info{version,mode}``
``GET /cgi-bin/version``  ``v1`` / ``v2`` / ``v3`` as text/plain, in every mode
``GET /cgi-bin/mode``     the current mode; ``POST /cgi-bin/mode?mode=X`` sets it
========================  =================================================================

Every response carries ``X-App-Version`` and ``X-App-Mode`` headers. ``/metrics``,
``/version`` and ``/mode`` always answer 200 and are not counted in the metrics.

Modes: ``ok``, ``500``, ``slow``, ``authfail``, ``unhealthy``. The default comes from the
``APP_MODE`` environment variable (baked per tag; override with ``run_app(...,
mode="500")``); at run time ``/tmp/mode`` in the container wins:
``set_mode(container, "500")``, i.e. ``docker exec C sh -c 'echo 500 > /tmp/mode'``, or
``POST /cgi-bin/mode?mode=500``. ``APP_SLOW_SECONDS`` sets the delay of mode ``slow``;
``APP_BOOT_SECONDS`` (default 0) how long the app refuses connections after each start.

The image has ``HEALTHCHECK`` (``wget`` of ``/cgi-bin/health``, interval 1 s, timeout 1 s,
retries 2): a container turns ``healthy`` about 1 s after start and ``unhealthy`` about 2 s
after a switch to mode ``500`` or ``unhealthy`` (mode ``slow`` stays healthy).
"""

from __future__ import annotations

import contextlib
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from docker.errors import APIError, BuildError, NotFound

from tests.support import (
    SESSION_ID,
    TEST_LABEL,
    docker_labels,
    is_stale_session,
    require,
    unique_name,
)
from tests.support.services import sweep_docker

__all__ = [
    "APP_CONTEXT",
    "MODES",
    "AppImages",
    "RunningApp",
    "app_images",
    "container_health",
    "run_app",
    "set_mode",
    "wait_health",
    "wait_http",
]

APP_CONTEXT = Path(__file__).resolve().parent.parent / "images" / "app"
IMAGE_REPO_PREFIX = "watchdogd-test/app"
#: release -> the mode its image runs in by default
RELEASES = {"v1": "ok", "v2": "500", "v3": "slow"}
MODES = ("ok", "500", "slow", "authfail", "unhealthy")
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


@dataclass(frozen=True)
class AppImages:
    """References (``repo:tag``) and image ids of the built test images."""

    repo: str
    refs: dict[str, str]
    ids: dict[str, str]

    @property
    def v1(self) -> str:
        return self.refs["v1"]

    @property
    def v2(self) -> str:
        return self.refs["v2"]

    @property
    def v3(self) -> str:
        return self.refs["v3"]

    def __getitem__(self, release: str) -> str:
        return self.refs[release]


class RunningApp(NamedTuple):
    """A started app container and its host port on 127.0.0.1 (unpacks as a pair)."""

    container: Any
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a program interpreter (statically linked)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if data[:4] != b"\x7fELF":
        return False
    is64, little = data[4] == 2, data[5] == 1
    order = "<" if little else ">"
    if is64:
        phoff, phentsize, phnum = (
            struct.unpack_from(order + "Q", data, 0x20)[0],
            *struct.unpack_from(order + "HH", data, 0x36),
        )
    else:
        phoff, phentsize, phnum = (
            struct.unpack_from(order + "I", data, 0x1C)[0],
            *struct.unpack_from(order + "HH", data, 0x2A),
        )
    pt_interp = 3
    return all(
        struct.unpack_from(order + "I", data, phoff + i * phentsize)[0] != pt_interp
        for i in range(phnum)
    )


def _static_busybox() -> Path | None:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate).resolve()
        if _is_static_elf(path):
            return path
    return None


def _build(client: Any, context: Path, ref: str, release: str) -> str:
    try:
        image, _ = client.images.build(
            path=str(context),
            tag=ref,
            buildargs={"APP_VERSION": release, "APP_MODE": RELEASES[release]},
            labels={TEST_LABEL: "1"},
            rm=True,
            forcerm=True,
            pull=False,
        )
    except BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk)) for chunk in exc.build_log)
        pytest.fail(f"building {ref} failed: {exc}\n{log}", pytrace=False)
    image_id: str = image.id
    return image_id


def _remove_tags(client: Any, refs: list[str]) -> None:
    for ref in refs:
        # By reference, without force: this only untags when another tag (e.g. a
        # concurrent session's identical build) still points at the image.
        with contextlib.suppress(NotFound, APIError):
            client.images.remove(ref)


def _remove_stale_repos(client: Any) -> None:
    """Remove tags of test-image repositories whose pytest session has died."""
    prefix = f"{IMAGE_REPO_PREFIX}-"
    for image in client.images.list(filters={"label": f"{TEST_LABEL}=1"}):
        stale = []
        for tag in image.tags:
            repo = tag.rsplit(":", 1)[0]
            if not repo.startswith(prefix):
                continue
            if is_stale_session(repo[len(prefix) :]):
                stale.append(tag)
        _remove_tags(client, stale)


@pytest.fixture(scope="session")
def app_images(docker_engine: Any) -> Iterator[AppImages]:
    """Build ``watchdogd-test/app-<session>:v1|v2|v3``; untag them at session end."""
    busybox = _static_busybox()
    require(busybox, "a statically linked /bin/busybox (Debian package busybox-static)")
    assert busybox is not None
    _remove_stale_repos(docker_engine)
    repo = f"{IMAGE_REPO_PREFIX}-{SESSION_ID}"
    refs = {release: f"{repo}:{release}" for release in RELEASES}
    ids: dict[str, str] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="watchdogd-test-build-") as tmp:
            context = Path(tmp) / "app"
            shutil.copytree(APP_CONTEXT, context)
            shutil.copy2(busybox, context / "busybox")
            for script in [
                *(context / "www" / "cgi-bin").iterdir(),
                context / "app" / "entrypoint.sh",
            ]:
                script.chmod(0o755)
            for release, ref in refs.items():
                ids[release] = _build(docker_engine, context, ref, release)
        yield AppImages(repo=repo, refs=refs, ids=ids)
    finally:
        # Containers first, or the images would still be in use.
        sweep_docker(docker_engine)
        _remove_tags(docker_engine, list(refs.values()))


def wait_http(
    url: str,
    timeout: float = 30.0,
    *,
    status: int | None = 200,
    interval: float = 0.1,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Poll ``url`` until it answers with ``status`` (any status if None); return it.

    Raises ``TimeoutError`` naming the last status or error.
    """
    deadline = time.monotonic() + timeout
    last = "no attempt"
    with httpx.Client(trust_env=False, timeout=max(1.0, min(5.0, timeout))) as client:
        while True:
            try:
                response = client.get(url, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if status is None or response.status_code == status:
                    return response
                last = f"HTTP {response.status_code}"
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{url} did not answer {status or 'at all'} in {timeout} s ({last})"
                )
            time.sleep(interval)


def _host_port(container: Any, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get("8080/tcp") or []
        for binding in bindings:
            if binding.get("HostPort"):
                return int(binding["HostPort"])
        if container.status not in {"created", "running"}:
            logs = container.logs(tail=40).decode(errors="replace")
            raise RuntimeError(f"container {container.name} is {container.status}:\n{logs}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"container {container.name} published no port for 8080/tcp")
        time.sleep(0.1)


def run_app(
    client: Any,
    image: str,
    name: str | None = None,
    *,
    mode: str | None = None,
    environment: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    wait: bool = True,
    timeout: float = 30.0,
    **kwargs: Any,
) -> RunningApp:
    """Run ``image`` detached, 8080 published on an ephemeral 127.0.0.1 port.

    The container carries :func:`docker_labels` (plus ``labels``); ``mode`` sets
    ``APP_MODE``; other keyword arguments go to ``client.containers.run``. With ``wait``
    this returns once ``/cgi-bin/version`` answers (so not necessarily ``healthy``: use
    :func:`wait_health`). ``name`` defaults to a session-unique ``wdt-app-...``.
    """
    env = dict(environment or {})
    if mode is not None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        env["APP_MODE"] = mode
    kwargs.setdefault("ports", {"8080/tcp": ("127.0.0.1",)})
    container = client.containers.run(
        image,
        name=name or unique_name("wdt-app"),
        detach=True,
        environment=env,
        labels=docker_labels(**(labels or {})),
        **kwargs,
    )
    try:
        app = RunningApp(container, _host_port(container))
        if wait:
            wait_http(f"{app.url}/cgi-bin/version", timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            container.remove(force=True)
        raise
    return app


def set_mode(container: Any, mode: str) -> None:
    """Switch a running app container's mode (writes ``/tmp/mode`` via ``docker exec``)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
    result = container.exec_run(["sh", "-c", f"echo {mode} > /tmp/mode"])
    if result.exit_code != 0:
        raise RuntimeError(f"setting mode {mode} in {container.name} failed: {result.output!r}")


def container_health(container: Any) -> str | None:
    """``starting`` / ``healthy`` / ``unhealthy``, or None without a healthcheck."""
    container.reload()
    health = container.attrs.get("State", {}).get("Health")
    return health.get("Status") if health else None


def wait_health(container: Any, status: str = "healthy", timeout: float = 30.0) -> None:
    """Wait until the container's healthcheck reports ``status``."""
    deadline = time.monotonic() + timeout
    while (current := container_health(container)) != status:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{container.name} is {current}, not {status}, after {timeout} s")
        time.sleep(0.2)
