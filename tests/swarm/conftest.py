"""A real single-node swarm on the shared engine, and Swarm services of the test app.

``swarm`` (session): the engine as a swarm manager. An engine in no swarm is made one with
``docker swarm init --advertise-addr 127.0.0.1`` (docker-py's ``swarm.init``), and the node is
labelled as made by the tests. Every session that uses the swarm registers itself with a config
``watchdogd-test-swarm-user.<session>``; at teardown the last live user of a swarm the tests
made leaves it (``docker swarm leave --force``). A swarm that existed before is never left.

``services`` (function): creates replicated services of the test images, with host-mode
ports (the routing mesh needs IPVS, which this kernel lacks: REFERENCE.md), and removes them
and the state config watchdogd keeps for them at teardown.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from docker.errors import APIError, NotFound

from tests.support import SESSION_ID, docker_labels, is_stale_session, require, unique_name
from watchdogd.watch.swarm_document import STATE_LABEL, config_name

USER_PREFIX = "watchdogd-test-swarm-user."
MADE_BY_TESTS = "watchdogd.test.swarm-made-by"
SECOND = 1_000_000_000  # Swarm durations are nanoseconds


def _live_users(client: Any) -> list[str]:
    sessions = []
    for config in client.api.configs(filters={"name": USER_PREFIX}):
        name = str(config["Spec"]["Name"])
        session = name.removeprefix(USER_PREFIX)
        if name.startswith(USER_PREFIX) and session != SESSION_ID:
            if is_stale_session(session):
                with contextlib.suppress(NotFound, APIError):
                    client.api.remove_config(config["ID"])
            else:
                sessions.append(session)
    return sessions


def _is_manager(client: Any) -> bool:
    info = client.info().get("Swarm") or {}
    return info.get("LocalNodeState") == "active" and bool(info.get("ControlAvailable"))


def _init(client: Any) -> None:
    """``docker swarm init --advertise-addr 127.0.0.1``, the node marked as the tests'."""
    try:
        client.swarm.init(advertise_addr="127.0.0.1")
    except APIError:
        if _is_manager(client):
            return  # another session made it a moment ago
        raise
    node = client.nodes.get(client.info()["Swarm"]["NodeID"])
    spec = node.attrs["Spec"]
    spec["Labels"] = {**(spec.get("Labels") or {}), MADE_BY_TESTS: SESSION_ID}
    node.update(spec)


@pytest.fixture(scope="session")
def swarm(docker_engine: Any) -> Iterator[Any]:
    """The engine as the manager of a swarm (see the module docstring)."""
    state = (docker_engine.info().get("Swarm") or {}).get("LocalNodeState")
    if state == "inactive":
        _init(docker_engine)
    elif not _is_manager(docker_engine):
        require(False, f"a Docker engine in no swarm or a swarm manager (it is {state})")
    docker_engine.api.create_config(USER_PREFIX + SESSION_ID, b"1", labels=docker_labels())
    try:
        yield docker_engine
    finally:
        _leave_if_last(docker_engine)


def _leave_if_last(client: Any) -> None:
    if not _is_manager(client):
        return  # somebody left it already
    for config in client.api.configs(filters={"label": f"watchdogd.test.session={SESSION_ID}"}):
        with contextlib.suppress(NotFound, APIError):
            client.api.remove_config(config["ID"])  # this session's user config among them
    node = client.nodes.get(client.info()["Swarm"]["NodeID"])
    if MADE_BY_TESTS in (node.attrs["Spec"].get("Labels") or {}) and not _live_users(client):
        client.swarm.leave(force=True)
        # `swarm init` made this bridge and `leave` keeps it; the engine had none before.
        with contextlib.suppress(NotFound, APIError):
            client.api.remove_network("docker_gwbridge")


# --------------------------------------------------------------------------- services


def task_template(image: str, **container: Any) -> dict[str, Any]:
    return {
        "ContainerSpec": {"Image": image, "Labels": docker_labels(), **container},
        "RestartPolicy": {"Condition": "any", "Delay": SECOND},
    }


@dataclass
class Services:
    """Creates services of the test app; removes them and watchdogd's state configs."""

    client: Any
    names: list[str] = field(default_factory=list)

    def create(self, image: str, replicas: int = 3, **container: Any) -> str:
        name = unique_name("wdt-svc")
        spec = {
            "Name": name,
            "Labels": docker_labels(),
            "TaskTemplate": task_template(image, **container),
            "Mode": {"Replicated": {"Replicas": replicas}},
            # Deploys go to every replica at once and carry on when they fail, so a bad release
            # reaches all of them; rollbacks use Swarm's defaults (one at a time).
            "UpdateConfig": {"Parallelism": 0, "FailureAction": "continue", "Monitor": SECOND},
            # No published port: each task gets its own host port (host mode, no mesh).
            "EndpointSpec": {
                "Ports": [{"Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host"}]
            },
        }
        api = self.client.api
        response = api._post_json(api._url("/services/create"), data=spec)
        api._raise_for_status(response)
        self.names.append(name)
        return name

    def inspect(self, name: str) -> dict[str, Any]:
        return dict(self.client.api.inspect_service(name))

    def update(self, name: str, image: str | None = None, **container: Any) -> None:
        """``docker service update [--image IMAGE] [--env-add ...]``, as a deployer would (Swarm
        bumps the version while it updates, so a stale read is retried, as the CLI does)."""
        api = self.client.api
        for _ in range(20):
            service = self.inspect(name)
            spec = service["Spec"]
            if image is not None:
                spec["TaskTemplate"]["ContainerSpec"]["Image"] = image
            spec["TaskTemplate"]["ContainerSpec"].update(container)
            url = api._url("/services/{0}/update", service["ID"])
            version = service["Version"]["Index"]
            response = api._post_json(url, data=spec, params={"version": version})
            if "out of sequence" not in response.text:
                api._raise_for_status(response)
                return
            time.sleep(0.05)
        raise AssertionError(f"{name} kept changing; update not applied")

    def tasks(self, name: str) -> list[dict[str, Any]]:
        return [dict(t) for t in self.client.api.tasks(filters={"service": name})]

    def running(self, name: str) -> list[dict[str, Any]]:
        return [
            t
            for t in self.tasks(name)
            if t["DesiredState"] == "running" and t["Status"]["State"] == "running"
        ]

    def wait_running(self, name: str, image: str, count: int = 3, timeout: float = 60.0) -> None:
        """Until ``count`` tasks of ``image`` run and no update is in progress."""
        deadline = time.monotonic() + timeout
        while True:
            service = self.inspect(name)
            state = (service.get("UpdateStatus") or {}).get("State")
            tasks = [t for t in self.running(name) if t["Spec"]["ContainerSpec"]["Image"] == image]
            if len(tasks) >= count and state not in ("updating", "rollback_started"):
                return
            if time.monotonic() >= deadline:
                raise AssertionError(f"{name}: {len(tasks)}/{count} tasks of {image}, {state}")
            time.sleep(0.2)

    def versions(self, name: str) -> list[str]:
        """What each running task answers on its own host port (``/cgi-bin/version``)."""
        answers = []
        with httpx.Client(trust_env=False, timeout=5) as http:
            for task in self.running(name):
                port = task["Status"]["PortStatus"]["Ports"][0]["PublishedPort"]
                answers.append(http.get(f"http://127.0.0.1:{port}/cgi-bin/version").text.strip())
        return sorted(answers)

    def state(self, name: str) -> dict[str, Any]:
        """The state watchdogd keeps in Swarm for service ``name`` ({} when none)."""
        for config in self.client.api.configs(filters={"name": config_name(name)}):
            if config["Spec"]["Name"] == config_name(name):
                return dict(json.loads(config["Spec"]["Labels"][STATE_LABEL]))
        return {}

    def remove_all(self) -> None:
        for name in self.names:
            with contextlib.suppress(NotFound, APIError):
                self.client.api.remove_service(name)
            with contextlib.suppress(NotFound, APIError):
                self.client.api.remove_config(config_name(name))


@pytest.fixture
def services(swarm: Any) -> Iterator[Services]:
    made = Services(swarm)
    try:
        yield made
    finally:
        made.remove_all()
