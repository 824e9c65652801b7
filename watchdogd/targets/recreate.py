"""From a container's inspect output to the body that recreates it, and to its fingerprint.

Pure functions, no I/O: the drivers fetch the inspect dicts, this module decides what to keep.

A container's inspect output mixes three kinds of facts, and recreating it well means telling
them apart (the pitfalls Watchtower and Compose met, see ``/work/shared/REFERENCE.md``):

* what the user asked for (``-e``, ``-v``, ``--network-alias``, ``--memory`` ...): kept;
* what the image supplied (its ``ENV``, ``LABEL``, ``CMD``, ``HEALTHCHECK``, ``VOLUME``,
  ``EXPOSE``): subtracted, so that the image we recreate from brings its own defaults;
* what the engine made up (hostname = short ID, ``02:42:…`` MACs, the short-ID network alias,
  IDs, addresses, state): dropped, or the new container would collide with the old one.

The same split makes the fingerprint stable: a ``docker rm -f`` + ``docker run`` with the same
flags and another image gives the same ``config_hash``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from watchdogd.model import Release, fingerprint

# The parts of an image's config that a container inherits unless it overrides them.
IMAGE_DEFAULT_KEYS = (
    "Env",
    "Labels",
    "Cmd",
    "Entrypoint",
    "Healthcheck",
    "Volumes",
    "ExposedPorts",
    "WorkingDir",
    "User",
    "StopSignal",
)
# Config keys the engine fills in or that only make sense for an image; never sent on create.
_ENGINE_CONFIG_KEYS = ("Image", "ArgsEscaped", "OnBuild", "Shell")
# Whether the CLI attached to the container's streams (``docker create`` vs ``run -d``): no
# effect on how it runs, so not part of its identity.
_UNHASHED_CONFIG_KEYS = ("AttachStdin", "AttachStdout", "AttachStderr")
# HostConfig keys the engine ignores on create (the CLI's --cidfile) or that vary per terminal.
_VOLATILE_HOST_KEYS = ("ContainerIDFile", "ConsoleSize")
# Compose labels that change with the image or per replica, not with the service's config:
# ``image`` is the image ID, ``config-hash`` hashes the image reference too, ``replace`` names the
# container a recreate replaced, ``version`` is the compose binary's.
_VOLATILE_LABELS = frozenset(
    {
        "com.docker.compose.image",
        "com.docker.compose.config-hash",
        "com.docker.compose.container-number",
        "com.docker.compose.replace",
        "com.docker.compose.version",
    }
)
# Docker derives the MACs it generates from the IP with this prefix; copying one collides.
_ENGINE_MAC_PREFIX = "02:42:"
# Anonymous volumes are named by the engine with 64 hex digits.
_ANONYMOUS_VOLUME = re.compile(r"^[0-9a-f]{64}$")
# Docker Engine API version from which one create call can attach several networks.
MULTI_NETWORK_CREATE_API = (1, 44)


def snapshot(container: dict[str, Any], image: dict[str, Any] | None) -> dict[str, Any]:
    """What a release must remember to be put back: the container's inspect output (only the
    parts recreation reads) and the defaults of the image it ran, so that those can be
    subtracted later even if the image has been re-tagged meanwhile. JSON-able."""
    image = image or {}
    defaults = {key: (image.get("Config") or {}).get(key) for key in IMAGE_DEFAULT_KEYS}
    return {
        "Id": container["Id"],
        "Name": container["Name"],
        "Created": container.get("Created", ""),
        "Image": container["Image"],
        "Config": copy.deepcopy(container.get("Config") or {}),
        "HostConfig": copy.deepcopy(container.get("HostConfig") or {}),
        "NetworkSettings": {
            "Networks": copy.deepcopy((container.get("NetworkSettings") or {}).get("Networks"))
            or {}
        },
        "Mounts": copy.deepcopy(container.get("Mounts") or []),
        "ImageDefaults": defaults,
        "ImageRepoDigests": list(image.get("RepoDigests") or []),
    }


def release_of(target: str, spec: dict[str, Any]) -> Release:
    """The release a snapshot shows: the image by digest where it has one (a digest names the
    same bytes on every host), else by local image ID, plus the config fingerprint."""
    ref = spec["Config"].get("Image") or ""
    digests = sorted(spec.get("ImageRepoDigests") or [])
    same_repo = [d for d in digests if d.split("@", 1)[0] == _repository(ref)]
    image = (same_repo or digests or [spec["Image"]])[0]
    return Release(
        target=target,
        image=image,
        config_hash=config_hash(spec),
        image_ref=ref,
        spec=spec,
    )


def _repository(ref: str) -> str:
    """``registry:5000/app:v1`` and ``app@sha256:…`` -> the repository part."""
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def short_id(spec: dict[str, Any]) -> str:
    return str(spec["Id"])[:12]


def container_name(spec: dict[str, Any]) -> str:
    return str(spec["Name"]).lstrip("/")


# --- what the user asked for -----------------------------------------------------------------


def user_config(spec: dict[str, Any]) -> dict[str, Any]:
    """``Config`` minus the image's defaults and what the engine made up (without ``Image``)."""
    config: dict[str, Any] = copy.deepcopy(spec["Config"])
    defaults = spec.get("ImageDefaults") or {}
    host = spec.get("HostConfig") or {}
    for key in _ENGINE_CONFIG_KEYS:
        config.pop(key, None)

    network_mode = str(host.get("NetworkMode") or "")
    # The engine sets the hostname to the short ID; in host/container network modes it comes
    # from the other namespace and the engine refuses one on create.
    if config.get("Hostname") == short_id(spec) or network_mode.startswith(("container:", "host")):
        config.pop("Hostname", None)
    if str(config.get("MacAddress") or "").lower().startswith(_ENGINE_MAC_PREFIX):
        config.pop("MacAddress", None)

    config["Env"] = [e for e in config.get("Env") or [] if e not in (defaults.get("Env") or [])]
    image_labels = defaults.get("Labels") or {}
    config["Labels"] = {
        k: v for k, v in (config.get("Labels") or {}).items() if image_labels.get(k) != v
    }
    # A user-set ENTRYPOINT resets the image's CMD, so CMD can only be dropped with it.
    if config.get("Entrypoint") == defaults.get("Entrypoint"):
        config.pop("Entrypoint", None)
        if config.get("Cmd") == defaults.get("Cmd"):
            config.pop("Cmd", None)
    health = _subtract_healthcheck(config.get("Healthcheck"), defaults.get("Healthcheck"))
    if health is None:
        config.pop("Healthcheck", None)
    else:
        config["Healthcheck"] = health
    config["Volumes"] = _subtract_keys(config.get("Volumes"), defaults.get("Volumes"))
    exposed = _subtract_keys(config.get("ExposedPorts"), defaults.get("ExposedPorts")) or {}
    # A published port must be exposed; the image may no longer expose it.
    exposed.update({port: {} for port in host.get("PortBindings") or {}})
    config["ExposedPorts"] = exposed or None
    for key in ("WorkingDir", "User", "StopSignal"):
        if config.get(key) == defaults.get(key):
            config.pop(key, None)
    return config


def _subtract_keys(mapping: Any, defaults: Any) -> dict[str, Any] | None:
    rest = {k: v for k, v in (mapping or {}).items() if k not in (defaults or {})}
    return rest or None


def _subtract_healthcheck(health: Any, default: Any) -> dict[str, Any] | None:
    """The fields the user set; the engine fills a missing or zero field from the image."""
    if not health:
        return None
    if not default:
        return dict(health)
    rest = {k: v for k, v in health.items() if default.get(k) != v}
    return rest or None


def is_anonymous_volume(name: str) -> bool:
    return bool(_ANONYMOUS_VOLUME.match(name))


def host_config(spec: dict[str, Any]) -> dict[str, Any]:
    """``HostConfig`` for create, with the old container's anonymous volumes mounted by name.

    Without this the engine would give the new container fresh, empty anonymous volumes, as
    Compose avoids by mounting the previous ones explicitly.
    """
    host = copy.deepcopy(spec.get("HostConfig") or {})
    for key in _VOLATILE_HOST_KEYS:
        host.pop(key, None)
    anonymous = {
        m["Destination"]: m
        for m in spec.get("Mounts") or []
        if m.get("Type") == "volume" and is_anonymous_volume(str(m.get("Name") or ""))
    }
    # --mount type=volume without a source: fill in the volume it got.
    for mount in host.get("Mounts") or []:
        target = mount.get("Target")
        if mount.get("Type") == "volume" and not mount.get("Source") and target in anonymous:
            mount["Source"] = anonymous[target]["Name"]
    covered = {_bind_destination(b) for b in host.get("Binds") or []}
    covered |= {m.get("Target") for m in host.get("Mounts") or []}
    # Only destinations the container declares as volumes: --volumes-from mounts come back
    # through VolumesFrom and must not be mounted twice.
    declared = set((spec["Config"].get("Volumes") or {}).keys())
    extra = [
        f"{m['Name']}:{dest}" + ("" if m.get("RW", True) else ":ro")
        for dest, m in sorted(anonymous.items())
        if dest not in covered and dest in declared
    ]
    if extra:
        host["Binds"] = [*(host.get("Binds") or []), *extra]
    if host.get("Links"):
        host["Links"] = [_create_link(link) for link in host["Links"]]
    return host


def _bind_destination(bind: str) -> str:
    parts = bind.split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _create_link(link: str) -> str:
    """Inspect shows links as ``/db:/web/alias``; create wants ``db:alias``."""
    source, _, alias = link.partition(":")
    return f"{source.lstrip('/')}:{alias.rsplit('/', 1)[-1]}" if alias else source.lstrip("/")


def primary_network(spec: dict[str, Any]) -> str | None:
    """The network named by ``NetworkMode``, the one a pre-1.44 create can attach; ``None``
    for modes without endpoints of their own (host, none, container:…)."""
    mode = str((spec.get("HostConfig") or {}).get("NetworkMode") or "default")
    if mode in ("host", "none") or mode.startswith("container:"):
        return None
    networks = spec["NetworkSettings"]["Networks"]
    if mode in networks:
        return mode
    if mode == "default" and "bridge" in networks:
        return "bridge"
    return min(networks) if networks else None


def endpoints(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Endpoint settings to recreate, per network name: aliases and static IPs; never the
    addresses, MACs or IDs the engine assigned."""
    if primary_network(spec) is None:
        return {}
    stale = {short_id(spec)}
    result: dict[str, dict[str, Any]] = {}
    for name, settings in sorted(spec["NetworkSettings"]["Networks"].items()):
        endpoint = settings or {}
        aliases = [a for a in endpoint.get("Aliases") or [] if a not in stale]
        result[name] = {
            "IPAMConfig": endpoint.get("IPAMConfig") or None,
            "Links": endpoint.get("Links") or None,
            "Aliases": aliases or None,
            "DriverOpts": endpoint.get("DriverOpts") or None,
        }
    return result


# --- the create call -------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatePlan:
    """The body for ``POST /containers/create`` plus the networks to ``connect`` before start
    (engines older than API 1.44 attach only one network at create)."""

    body: dict[str, Any]
    connect: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def create_plan(spec: dict[str, Any], image: str, api_version: tuple[int, int]) -> CreatePlan:
    """The create call that brings back the container of ``spec`` running ``image``."""
    body = user_config(spec)
    body["Image"] = image
    body["HostConfig"] = host_config(spec)
    wanted = endpoints(spec)
    primary = primary_network(spec)
    mac = body.get("MacAddress")
    if api_version >= MULTI_NETWORK_CREATE_API:
        # Config.MacAddress is deprecated from 1.44: the MAC belongs to an endpoint.
        body.pop("MacAddress", None)
        if mac and primary is not None:
            wanted[primary] = {**wanted[primary], "MacAddress": mac}
        at_create, later = wanted, {}
    else:
        at_create = {k: v for k, v in wanted.items() if k == primary}
        later = {k: v for k, v in wanted.items() if k != primary}
    if at_create:
        body["NetworkingConfig"] = {"EndpointsConfig": at_create}
    return CreatePlan(body=body, connect=sorted(later.items()))


# --- the fingerprint -------------------------------------------------------------------------


def config_hash(spec: dict[str, Any]) -> str:
    """A hash of what the user configured, independent of the image and of the engine's
    choices, so that redeploying with the same flags and another image keeps it."""
    config = user_config(spec)
    config.pop("ExposedPorts", None)  # image EXPOSE + published ports, both counted elsewhere
    for key in _UNHASHED_CONFIG_KEYS:
        config.pop(key, None)
    config["Labels"] = {
        k: v for k, v in config["Labels"].items() if k not in _VOLATILE_LABELS
    } or None
    config["Env"] = sorted(config["Env"]) or None
    host = copy.deepcopy(spec.get("HostConfig") or {})
    for key in _VOLATILE_HOST_KEYS:
        host.pop(key, None)
    # A restored container mounts its predecessor's anonymous volumes by name; the original
    # got them implicitly. Both must hash alike, so anonymous volumes count by destination
    # only (through Config.Volumes).
    host["Binds"] = sorted(
        b for b in host.get("Binds") or [] if not is_anonymous_volume(b.split(":", 1)[0])
    )
    host["Mounts"] = [_hashable_mount(m) for m in host.get("Mounts") or []]
    name = container_name(spec)
    networks = {
        net: {
            **endpoint,
            # Compose gives each replica its own name as an alias; the service is the same.
            "Aliases": sorted(a for a in endpoint["Aliases"] or [] if a != name) or None,
        }
        for net, endpoint in endpoints(spec).items()
    }
    return fingerprint(
        {"Config": _set_only(config), "HostConfig": _set_only(host), "Networks": networks}
    )


def _set_only(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that hold a value. Unset and empty are the same setting, and the engine
    writes them both ways: ``HostConfig.Dns`` is ``null`` after ``docker run`` and ``[]`` once
    an engine restart has reloaded the container, which must not make it a new release
    (tests/reliability/test_engine_outage.py)."""
    return {key: value for key, value in settings.items() if value not in (None, [], {})}


def _hashable_mount(mount: dict[str, Any]) -> dict[str, Any]:
    source = str(mount.get("Source") or "")
    if mount.get("Type") == "volume" and (not source or is_anonymous_volume(source)):
        return {**mount, "Source": ""}
    return mount
