"""The Swarm part of the Engine API, as the swarm driver and the state mirror need it.

Every call goes through ``DockerEngine.call`` (a worker thread; docker, HTTP and socket errors
become ``TargetError``). Two calls docker-py has no public method for are posted here with its
low-level helpers (``_url``, ``_post_json``, ``_raise_for_status``):

* ``POST /services/{id}/update?version=N&rollback=previous``: ``APIClient.update_service``
  has no ``rollback`` parameter, and it rebuilds the body from keyword arguments where we need
  to send a spec verbatim;
* ``POST /configs/{id}/update?version=N``: only a config's labels may change, which is all the
  state mirror writes.

Both carry the object's ``version``: Swarm applies the write only if nobody wrote the object
since we read it. A stale version is answered "update out of sequence" (HTTP 500 on engine
20.10, where the gRPC code is Unknown; newer engines may say 409), which becomes
``VersionConflict`` so that callers re-read and decide again.
"""

from __future__ import annotations

import contextlib
from typing import Any

from docker import auth
from docker.errors import APIError

from watchdogd.engine.docker_api import DockerEngine, explain
from watchdogd.errors import ObjectExists, ObjectMissing, VersionConflict

__all__ = ["SwarmApi"]


def _checked(response: Any, api: Any, what: str) -> Any:
    """``response``'s JSON body; a stale version becomes ``VersionConflict``."""
    try:
        api._raise_for_status(response)
    except APIError as err:
        text = explain(err)
        if "out of sequence" in text or err.status_code == 409:
            raise VersionConflict(f"{what}: {text}") from err
        raise
    return response.json() if response.content else {}


class SwarmApi:
    """Services, tasks and configs of the swarm the engine is a manager of."""

    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine

    async def service(self, name: str) -> dict[str, Any] | None:
        """``docker service inspect`` (without defaults inserted: the spec as stored)."""
        try:
            return await self.engine.call(
                f"inspect service {name}", lambda api: dict(api.inspect_service(name))
            )
        except ObjectMissing:
            return None

    async def tasks(self, service_id: str) -> list[dict[str, Any]]:
        return await self.engine.call(
            f"list tasks of service {service_id}",
            lambda api: [dict(t) for t in api.tasks(filters={"service": service_id})],
        )

    async def node_id(self) -> str:
        """The engine's own swarm node id ("" when it is not in a swarm)."""
        info = await self.engine.call("docker info", lambda api: dict(api.info()))
        return str((info.get("Swarm") or {}).get("NodeID") or "")

    async def update_service(
        self, service: dict[str, Any], spec: dict[str, Any], *, rollback: bool = False
    ) -> list[str]:
        """Post ``spec`` for ``service`` (as inspected) under its version; with ``rollback``
        Swarm swaps in ``PreviousSpec`` instead and ignores the body. Returns the warnings."""
        service_id, version = str(service["ID"]), int(service["Version"]["Index"])
        params: dict[str, Any] = {"version": version}
        if rollback:
            params["rollback"] = "previous"
        what = f"{'roll back' if rollback else 'update'} service {spec.get('Name', service_id)}"

        def post(api: Any) -> list[str]:
            headers = {}
            image = str(((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image"))
            if not rollback and image:
                # As `docker service update --with-registry-auth` does: the nodes pull with the
                # credentials the manager is handed, if this host has any for the registry.
                registry, _ = auth.resolve_repository_name(image.split("@", 1)[0])
                header = auth.get_config_header(api, registry)
                if header:
                    headers["X-Registry-Auth"] = header
            url = api._url("/services/{0}/update", service_id)
            response = api._post_json(url, data=spec, params=params, headers=headers)
            body = _checked(response, api, what)
            return [str(w) for w in body.get("Warnings") or []]

        return await self.engine.call(what, post)

    # --- configs -------------------------------------------------------------------------------

    async def config(self, name: str) -> dict[str, Any] | None:
        """The config named exactly ``name`` (the engine's name filter also matches prefixes)."""

        def find(api: Any) -> dict[str, Any] | None:
            for found in api.configs(filters={"name": name}):
                if (found.get("Spec") or {}).get("Name") == name:
                    return dict(found)
            return None

        return await self.engine.call(f"find config {name}", find)

    async def create_config(self, name: str, data: bytes, labels: dict[str, str]) -> None:
        def create(api: Any) -> None:
            try:
                api.create_config(name, data, labels=labels)
            except APIError as err:
                if err.status_code == 409:
                    raise ObjectExists(f"create config {name}: {explain(err)}") from err
                raise

        await self.engine.call(f"create config {name}", create)

    async def update_config_labels(self, config: dict[str, Any], labels: dict[str, str]) -> None:
        """Replace the labels of ``config`` (as read) under its version."""
        spec = dict(config["Spec"], Labels=labels)
        config_id, version = str(config["ID"]), int(config["Version"]["Index"])
        what = f"update config {spec.get('Name', config_id)}"

        def post(api: Any) -> None:
            url = api._url("/configs/{0}/update", config_id)
            response = api._post_json(url, data=spec, params={"version": version})
            _checked(response, api, what)

        await self.engine.call(what, post)

    async def remove_config(self, name: str) -> None:
        with contextlib.suppress(ObjectMissing):
            await self.engine.call(f"remove config {name}", lambda api: api.remove_config(name))
