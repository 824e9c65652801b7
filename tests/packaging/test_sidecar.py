"""The sidecar image: built offline on a locally made base, it rolls an app container back.

The image is built from the repository's Dockerfile and .dockerignore, with watchdogd and its
dependencies as wheels made on the host (``pip wheel``) in the build context, on a base made
from the host's own Python (``tests/packaging/python_base.py``, about two seconds, so it is
not cached). The sidecar then runs beside a test app on a user network, with the Docker socket
mounted read-only, as the compose example in ``config/compose/`` does; it probes the app by
its network alias, and the test reads its API through a port published on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from docker.errors import APIError, BuildError, NotFound

from tests.packaging import python_base
from tests.support import SESSION_ID, docker_labels, is_stale_session, unique_name
from tests.support.images import AppImages, run_app, wait_health, wait_http

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "config" / "compose"
TOKEN = "sidecar-token-5f1c2a9e"
# Repositories named like the app images' (watchdogd-test/app-<session>…), so the sweeps in
# tests/support/images.py and .ci/services.sh know them as a session's, dead or alive.
REPOSITORY = f"watchdogd-test/app-{SESSION_ID}"
# Imports what `watchdogd run` imports and names each module whose bytecode, at the
# interpreter's optimization level, is not on disk.
MISSING_BYTECODE = """
import importlib.util, os, sys
import watchdogd.daemon.lifecycle
missing = [name for name, module in list(sys.modules.items())
           if (path := getattr(module, "__file__", None)) and path.endswith(".py")
           and not os.path.exists(importlib.util.cache_from_source(path))]
print(f"optimize={sys.flags.optimize} missing={sorted(missing)}")
"""


def _pip_wheels(destination: Path, workdir: Path) -> None:
    """watchdogd and every dependency as wheels, plus pip's own wheel for the base."""
    source = workdir / "src"
    source.mkdir()
    # A copy: building in the tree would leave build/ behind, under other people's feet.
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "watchdogd", source / "watchdogd", ignore=shutil.ignore_patterns("__pycache__")
    )
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"),
            *("--wheel-dir", str(destination), str(source), "pip"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{result.stdout}\n{result.stderr}", pytrace=False)


def _descendants(client: Any, image_id: str) -> list[str]:
    """Images built on ``image_id`` (the build stage's layers), children before parents."""
    children: dict[str, list[str]] = {}
    for entry in client.api.images(all=True):
        children.setdefault(entry.get("ParentId") or "", []).append(entry["Id"])
    order: list[str] = []

    def walk(parent: str) -> None:
        for child in children.get(parent, []):
            walk(child)
            order.append(child)

    walk(image_id)
    return order


def _remove_images(client: Any, ids: list[str]) -> None:
    for image_id in ids:
        with contextlib.suppress(NotFound, APIError):
            client.images.remove(image_id, force=True)


def _remove_stale_images(client: Any) -> None:
    """Bases and images a killed session left, with everything built on them in one go (the
    label sweeps only untag, and a base with children stays until they are gone)."""
    prefix = "watchdogd-test/app-"
    for image in client.images.list():
        for tag in image.tags:
            repository = tag.rsplit(":", 1)[0]
            for suffix in ("-pybase", "-sidecar"):
                session = repository.removeprefix(prefix).removesuffix(suffix)
                ours = repository.startswith(prefix) and repository.endswith(suffix)
                if ours and is_stale_session(session):
                    _remove_images(client, [*_descendants(client, image.id), image.id])


@pytest.fixture(scope="module")
def sidecar_image(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The watchdogd image, built with ``BASE`` = a base made from the host's Python."""
    _remove_stale_images(docker_engine)
    workdir = tmp_path_factory.mktemp("sidecar")
    context = workdir / "context"
    wheels = context / "dist" / "wheels"
    wheels.mkdir(parents=True)
    for name in ("Dockerfile", ".dockerignore"):
        shutil.copy2(ROOT / name, context / name)
    _pip_wheels(wheels, workdir)
    pip_wheel = next(wheels.glob("pip-*.whl"))
    files = python_base.runtime_files()
    base_ref = f"{REPOSITORY}-pybase:{python_base.digest(files, pip_wheel)}"
    labels = docker_labels()
    changes = ["ENV PATH=/usr/local/bin:/usr/bin:/bin"]
    changes += [f"LABEL {key}={value}" for key, value in labels.items()]
    imported = subprocess.run(
        ["docker", "import", *(arg for c in changes for arg in ("--change", c)), "-", base_ref],
        input=python_base.base_tar(files, pip_wheel),
        capture_output=True,
        check=False,
    )
    if imported.returncode != 0:
        pytest.fail(f"docker import failed: {imported.stderr.decode()}", pytrace=False)
    base_id = docker_engine.images.get(base_ref).id
    ref = f"{REPOSITORY}-sidecar:latest"
    try:
        try:
            # The build stage first, under a tag of its own: untagged, it would be a dangling
            # test image (it inherits the base's labels) until the final stage copies from it,
            # and a concurrent session's sweep may remove those. The second build reuses it.
            for stage, tag in (("build", f"{REPOSITORY}-sidecar:build"), (None, ref)):
                docker_engine.images.build(
                    path=str(context),
                    tag=tag,
                    target=stage,
                    buildargs={"BASE": base_ref},
                    labels=labels,
                    rm=True,
                    forcerm=True,
                    pull=False,
                )
        except BuildError as err:
            log = "".join(str(chunk.get("stream", chunk)) for chunk in err.build_log)
            pytest.fail(f"building the sidecar image failed: {err}\n{log}", pytrace=False)
        yield ref
    finally:
        # Containers first (the session sweep would do it later, but the images are in use).
        for container in docker_engine.containers.list(
            all=True, filters={"ancestor": base_id, "label": "watchdogd.test=1"}
        ):
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True)
        _remove_images(docker_engine, [*_descendants(docker_engine, base_id), base_id])


@pytest.fixture
def network(docker_engine: Any) -> Iterator[Any]:
    net = docker_engine.networks.create(unique_name("wdt-net"), labels=docker_labels())
    yield net
    with contextlib.suppress(NotFound, APIError):
        net.remove()


def sidecar_config(app_name: str) -> str:
    return f"""\
listen: 0.0.0.0:9797
api_token: ${{WATCHDOGD_TOKEN}}
state_dir: /var/lib/watchdogd
log: {{format: json, level: info}}
docker: {{poll_interval: 1s}}
defaults: {{window: 1m, bake_time: 3s, cooldown: 10m}}
targets:
  - name: app
    container: {app_name}
    checks:
      - {{name: health, type: container_health}}
      - {{name: api, type: http, url: "http://app:8080/cgi-bin/api", interval: 250ms, timeout: 2s}}
    gates:
      - {{check: api, metric: error_rate, above: 1%}}
    playbook:
      - rollback: {{}}
      - wait_healthy: {{timeout: 30s}}
"""


def deploy(client: Any, image: str, name: str, network: Any) -> Any:
    """What a deploy script does: replace the container, same name, network and alias."""
    with contextlib.suppress(NotFound):
        client.containers.get(name).remove(force=True)
    endpoint = client.api.create_endpoint_config(aliases=["app"])
    return run_app(
        client, image, name, network=network.name, networking_config={network.name: endpoint}
    ).container


def published_port(container: Any, port: str, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(port) or []
        if bindings and bindings[0].get("HostPort"):
            return int(bindings[0]["HostPort"])
        time.sleep(0.1)
    raise AssertionError(f"{container.name} published no {port}: {container.logs()!r}")


class Sidecar:
    """The watchdogd container as the test sees it: its API on a published port, its logs."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.url = f"http://127.0.0.1:{published_port(container, '9797/tcp')}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        try:
            wait_http(f"{self.url}/readyz", timeout)
        except TimeoutError as err:
            raise AssertionError(f"{err}\n{self.logs()[-4000:]}") from None

    def logs(self) -> str:
        return str(self.container.logs().decode(errors="replace"))

    def target(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/v1/targets/app", timeout=5, trust_env=False)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def wait_state(self, state: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | str = "no answer"
        while time.monotonic() < deadline:
            self.container.reload()
            if self.container.status != "running":
                break
            try:
                last = self.target()
            except httpx.HTTPError as err:
                last = repr(err)
            if isinstance(last, dict) and last["state"] == state:
                return last
            time.sleep(0.25)
        raise AssertionError(f"never {state}: {last}\n{self.logs()[-4000:]}")


@pytest.fixture
def sidecar(
    docker_engine: Any, sidecar_image: str, network: Any, tmp_path: Path
) -> Iterator[tuple[Sidecar, str]]:
    app_name = unique_name("wdt-app")
    config = tmp_path / "watchdogd.yaml"
    config.write_text(sidecar_config(app_name))
    config.chmod(0o644)
    socket_gid = os.stat("/var/run/docker.sock").st_gid
    container = docker_engine.containers.run(
        sidecar_image,
        name=unique_name("wdt-sidecar"),
        detach=True,
        labels=docker_labels(),
        environment={"WATCHDOGD_TOKEN": TOKEN},
        group_add=[str(socket_gid)],
        volumes={
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "ro"},
            str(config): {"bind": "/etc/watchdogd/watchdogd.yaml", "mode": "ro"},
        },
        network=network.name,
        ports={"9797/tcp": ("127.0.0.1", None)},
    )
    try:
        watchdog = Sidecar(container)
        watchdog.wait_ready()
        yield watchdog, app_name
    finally:
        with contextlib.suppress(NotFound, APIError):
            container.remove(force=True, v=True)


@pytest.mark.docker
@pytest.mark.slow
class TestSidecarImage:
    def test_rolls_the_app_back_from_inside_a_container(
        self, docker_engine: Any, app_images: AppImages, network: Any, sidecar: tuple[Sidecar, str]
    ) -> None:
        """v1 bakes to known-good; a deploy of v2 (500s) is rolled back to v1 by the sidecar."""
        watchdog, app_name = sidecar
        app = deploy(docker_engine, app_images.v1, app_name, network)
        wait_health(app)
        healthy = watchdog.wait_state("healthy")
        assert healthy["known_good_release"] is None  # only v1 so far, and it is current

        deploy(docker_engine, app_images.v2, app_name, network)
        status = watchdog.wait_state("rolled_back")

        restored = docker_engine.containers.get(app_name)
        assert restored.image.id == app_images.ids["v1"]
        assert restored.attrs["NetworkSettings"]["Networks"][network.name]["Aliases"]
        assert "app" in restored.attrs["NetworkSettings"]["Networks"][network.name]["Aliases"]
        assert [q["image"] for q in status["quarantined"]] == [app_images.ids["v2"]]
        wait_health(restored)
        logs = watchdog.logs()
        assert '"event": "watchdogd_started"' in logs
        assert TOKEN not in logs

    def test_runs_unprivileged_with_the_socket_read_only(
        self, docker_engine: Any, sidecar: tuple[Sidecar, str]
    ) -> None:
        """The daemon runs as uid 10001, and the socket is mounted read-only."""
        watchdog, _ = sidecar
        watchdog.container.reload()
        assert watchdog.container.attrs["Config"]["User"] == "10001:10001"
        mounts = {m["Destination"]: m for m in watchdog.container.attrs["Mounts"]}
        assert mounts["/var/run/docker.sock"]["RW"] is False
        top = watchdog.container.top(ps_args="-o pid,uid,args")
        assert any(row[1] == "10001" and "watchdogd" in row[2] for row in top["Processes"])
        assert httpx.get(f"{watchdog.url}/readyz", timeout=5, trust_env=False).status_code == 200

    def test_ships_the_bytecode_its_optimize_level_reads(
        self, sidecar: tuple[Sidecar, str]
    ) -> None:
        """PYTHONOPTIMIZE=2, and every module the daemon imports has its .opt-2.pyc in the
        image: a container that writes no bytecode compiles nothing at start."""
        watchdog, _ = sidecar
        code, output = watchdog.container.exec_run(["python3", "-c", MISSING_BYTECODE])
        assert code == 0, output.decode()
        assert output.decode().strip() == "optimize=2 missing=[]"


class TestComposeExample:
    def test_compose_file_mounts_the_socket_read_only_and_builds_with_a_base_argument(
        self,
    ) -> None:
        """The example builds from the Dockerfile with BASE and mounts docker.sock read-only."""
        compose = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
        service = compose["services"]["watchdogd"]
        assert "BASE" in service["build"]["args"]
        assert "/var/run/docker.sock:/var/run/docker.sock:ro" in service["volumes"]
        assert "./watchdogd.yaml:/etc/watchdogd/watchdogd.yaml:ro" in service["volumes"]

    def test_socket_proxy_variant_grants_only_the_documented_sections(self) -> None:
        """Behind docker-socket-proxy watchdogd has no socket and the proxy few API sections."""
        compose = yaml.safe_load((COMPOSE / "socket-proxy.yml").read_text())
        proxy = compose["services"]["docker-proxy"]
        granted = {key for key, value in proxy["environment"].items() if str(value) == "1"}
        assert granted == {"CONTAINERS", "IMAGES", "EVENTS", "POST", "PING", "VERSION"}
        watchdogd = compose["services"]["watchdogd"]
        assert not any("docker.sock" in volume for volume in watchdogd["volumes"])

    @pytest.mark.parametrize("name", ["watchdogd.yaml", "watchdogd-proxy.yaml"])
    def test_sidecar_configs_pass_check_config(self, name: str) -> None:
        """The configs the compose files mount pass `watchdogd check-config`."""
        result = subprocess.run(
            [sys.executable, "-m", "watchdogd", "check-config", str(COMPOSE / name)],
            capture_output=True,
            text=True,
            check=False,
            env=dict(os.environ, WATCHDOGD_TOKEN=TOKEN),
        )
        assert result.returncode == 0, result.stderr
