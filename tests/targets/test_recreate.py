"""The create-config builder and the fingerprint, on inspect dicts shaped like the engine's."""

from __future__ import annotations

import copy
from typing import Any

from watchdogd.targets.recreate import (
    config_hash,
    create_plan,
    endpoints,
    host_config,
    primary_network,
    release_of,
    snapshot,
    user_config,
)

ANON = "a" * 64
IMAGE_ID = "sha256:" + "1" * 64
OTHER_IMAGE_ID = "sha256:" + "2" * 64


def image(env: list[str] | None = None, **config: Any) -> dict[str, Any]:
    return {
        "Id": IMAGE_ID,
        "RepoDigests": [],
        "Config": {
            "Env": env or ["PATH=/bin", "APP_VERSION=v1", "APP_MODE=ok"],
            "Labels": {"watchdogd.test": "1", "org.opencontainers.image.version": "1"},
            "Cmd": None,
            "Entrypoint": ["/bin/sh", "/app/entrypoint.sh"],
            "Healthcheck": {"Test": ["CMD-SHELL", "wget x"], "Interval": 10**9, "Retries": 2},
            "Volumes": {"/state": {}},
            "ExposedPorts": {"8080/tcp": {}},
            "WorkingDir": "",
            "User": "",
            **config,
        },
    }


def container(
    container_id: str = "c" * 64, image_id: str = IMAGE_ID, **over: Any
) -> dict[str, Any]:
    """What ``docker run`` with a typical set of flags gives."""
    short = container_id[:12]
    attrs: dict[str, Any] = {
        "Id": container_id,
        "Name": "/web",
        "Created": "2026-01-01T00:00:00Z",
        "Image": image_id,
        "State": {"Running": True},
        "Config": {
            "Hostname": short,
            "Domainname": "",
            "User": "65534",
            "AttachStdout": False,
            "Env": ["GREETING=hi", "PATH=/bin", "APP_VERSION=v1", "APP_MODE=ok"],
            "Cmd": None,
            "Entrypoint": ["/bin/sh", "/app/entrypoint.sh"],
            "Healthcheck": {"Test": ["CMD-SHELL", "wget x"], "Interval": 2 * 10**9, "Retries": 2},
            "Image": "app:v1",
            "Volumes": {"/state": {}, "/cache": {}},
            "ExposedPorts": {"8080/tcp": {}},
            "WorkingDir": "/www",
            "Labels": {
                "watchdogd.test": "1",
                "org.opencontainers.image.version": "1",
                "team": "payments",
                "com.docker.compose.project": "shop",
                "com.docker.compose.image": image_id,
            },
        },
        "HostConfig": {
            "Binds": ["data:/data"],
            "ContainerIDFile": "",
            "ConsoleSize": [0, 0],
            "NetworkMode": "front",
            "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}]},
            "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
            "Memory": 64 * 2**20,
            "NanoCpus": 500_000_000,
        },
        "NetworkSettings": {
            "Networks": {
                "front": {
                    "IPAMConfig": {"IPv4Address": "10.1.2.50"},
                    "Aliases": ["web-alias", short],
                    "NetworkID": "n1",
                    "EndpointID": "e1",
                    "IPAddress": "10.1.2.50",
                    "MacAddress": "02:42:0a:01:02:32",
                },
                "back": {
                    "IPAMConfig": {},
                    "Aliases": ["side", short],
                    "NetworkID": "n2",
                    "MacAddress": "02:42:0a:01:03:02",
                },
            }
        },
        "Mounts": [
            {"Type": "volume", "Name": "data", "Destination": "/data", "RW": True},
            {"Type": "volume", "Name": ANON, "Destination": "/cache", "RW": True},
            {"Type": "volume", "Name": "b" * 64, "Destination": "/state", "RW": True},
        ],
    }
    attrs.update(over)
    return attrs


def spec(attrs: dict[str, Any] | None = None, img: dict[str, Any] | None = None) -> dict[str, Any]:
    return snapshot(attrs or container(), img or image())


class TestUserConfig:
    def test_image_defaults_are_subtracted(self) -> None:
        """Env, labels, entrypoint, volumes and ports that came from the image are dropped."""
        config = user_config(spec())
        assert config["Env"] == ["GREETING=hi"]
        assert config["Labels"] == {
            "team": "payments",
            "com.docker.compose.project": "shop",
            "com.docker.compose.image": IMAGE_ID,
        }
        assert "Entrypoint" not in config
        assert "Cmd" not in config
        assert config["Volumes"] == {"/cache": {}}
        assert config["ExposedPorts"] == {"8080/tcp": {}}  # published, so kept exposed
        assert config["WorkingDir"] == "/www"
        assert config["User"] == "65534"

    def test_healthcheck_keeps_only_the_fields_the_user_set(self) -> None:
        """--health-interval alone: the image's test and retries still come from the image."""
        assert user_config(spec())["Healthcheck"] == {"Interval": 2 * 10**9}

    def test_default_healthcheck_is_left_to_the_image(self) -> None:
        attrs = container()
        attrs["Config"]["Healthcheck"] = image()["Config"]["Healthcheck"]
        assert "Healthcheck" not in user_config(spec(attrs))

    def test_user_entrypoint_keeps_cmd(self) -> None:
        """A user ENTRYPOINT resets CMD, so CMD must be sent even when it equals the image's."""
        attrs = container()
        attrs["Config"]["Entrypoint"] = ["/bin/other"]
        config = user_config(spec(attrs))
        assert config["Entrypoint"] == ["/bin/other"]
        assert "Cmd" in config

    def test_engine_hostname_and_mac_are_dropped(self) -> None:
        attrs = container()
        attrs["Config"]["MacAddress"] = "02:42:ac:11:00:02"
        config = user_config(spec(attrs))
        assert "Hostname" not in config
        assert "MacAddress" not in config

    def test_user_hostname_and_mac_are_kept(self) -> None:
        attrs = container()
        attrs["Config"]["Hostname"] = "web01"
        attrs["Config"]["MacAddress"] = "92:d0:c6:0a:29:33"
        config = user_config(spec(attrs))
        assert (config["Hostname"], config["MacAddress"]) == ("web01", "92:d0:c6:0a:29:33")

    def test_container_network_mode_drops_hostname(self) -> None:
        attrs = container()
        attrs["Config"]["Hostname"] = "web01"
        attrs["HostConfig"]["NetworkMode"] = "container:abc"
        assert "Hostname" not in user_config(spec(attrs))
        assert primary_network(spec(attrs)) is None
        assert endpoints(spec(attrs)) == {}


class TestHostConfig:
    def test_anonymous_volumes_are_mounted_by_name(self) -> None:
        """The container's own anonymous volume is re-mounted; the image's too."""
        host = host_config(spec())
        assert host["Binds"] == ["data:/data", f"{ANON}:/cache", f"{'b' * 64}:/state"]
        assert "ContainerIDFile" not in host
        assert "ConsoleSize" not in host

    def test_anonymous_mount_without_source_gets_its_volume(self) -> None:
        attrs = container()
        attrs["HostConfig"]["Mounts"] = [{"Type": "volume", "Target": "/cache"}]
        host = host_config(spec(attrs))
        assert host["Mounts"] == [{"Type": "volume", "Target": "/cache", "Source": ANON}]
        assert f"{ANON}:/cache" not in host["Binds"]

    def test_volumes_from_mounts_are_not_duplicated(self) -> None:
        """A mount that is not a declared volume came from --volumes-from."""
        attrs = container()
        attrs["Mounts"].append({"Type": "volume", "Name": "d" * 64, "Destination": "/shared"})
        assert not any("/shared" in b for b in host_config(spec(attrs))["Binds"])

    def test_links_are_rewritten_for_create(self) -> None:
        attrs = container()
        attrs["HostConfig"]["Links"] = ["/db:/web/database"]
        assert host_config(spec(attrs))["Links"] == ["db:database"]


class TestCreatePlan:
    def test_old_engines_get_one_network_at_create_and_the_rest_by_connect(self) -> None:
        plan = create_plan(spec(), "app:v1", (1, 41))
        assert list(plan.body["NetworkingConfig"]["EndpointsConfig"]) == ["front"]
        front = plan.body["NetworkingConfig"]["EndpointsConfig"]["front"]
        assert front["Aliases"] == ["web-alias"]  # the short-ID alias is the engine's
        assert front["IPAMConfig"] == {"IPv4Address": "10.1.2.50"}
        assert "MacAddress" not in front
        assert plan.connect == [
            ("back", {"IPAMConfig": None, "Links": None, "Aliases": ["side"], "DriverOpts": None})
        ]
        assert plan.body["Image"] == "app:v1"

    def test_new_engines_get_every_network_at_create(self) -> None:
        attrs = container()
        attrs["Config"]["MacAddress"] = "92:d0:c6:0a:29:33"
        plan = create_plan(spec(attrs), "app:v1", (1, 44))
        endpoints_config = plan.body["NetworkingConfig"]["EndpointsConfig"]
        assert sorted(endpoints_config) == ["back", "front"]
        assert endpoints_config["front"]["MacAddress"] == "92:d0:c6:0a:29:33"
        assert "MacAddress" not in plan.body
        assert plan.connect == []

    def test_default_network_mode_means_bridge(self) -> None:
        attrs = container()
        attrs["HostConfig"]["NetworkMode"] = "default"
        attrs["NetworkSettings"]["Networks"] = {"bridge": {"Aliases": None}}
        plan = create_plan(spec(attrs), "app:v1", (1, 41))
        assert list(plan.body["NetworkingConfig"]["EndpointsConfig"]) == ["bridge"]


class TestFingerprint:
    def test_redeploy_with_another_image_keeps_the_hash(self) -> None:
        """Another image with other defaults, same flags: same hash, another image."""
        v2_image = image(env=["PATH=/bin", "APP_VERSION=v2", "APP_MODE=500"], Id=OTHER_IMAGE_ID)
        v2_image["Id"] = OTHER_IMAGE_ID
        v2 = container("f" * 64, OTHER_IMAGE_ID)
        v2["Config"]["Env"] = ["GREETING=hi", "PATH=/bin", "APP_VERSION=v2", "APP_MODE=500"]
        v2["Config"]["Labels"]["com.docker.compose.image"] = OTHER_IMAGE_ID
        v2["Mounts"][1]["Name"] = "e" * 64  # a fresh anonymous volume
        assert config_hash(spec(v2, v2_image)) == config_hash(spec())
        assert release_of("t", spec(v2, v2_image)).image == OTHER_IMAGE_ID

    def test_restored_container_with_explicit_anonymous_volume_keeps_the_hash(self) -> None:
        restored = container("9" * 64)
        restored["HostConfig"]["Binds"] = host_config(spec())["Binds"]
        restored["Config"]["AttachStdout"] = True  # created, not run -d
        assert config_hash(spec(restored)) == config_hash(spec())

    def test_a_changed_setting_changes_the_hash(self) -> None:
        changed = copy.deepcopy(container())
        changed["HostConfig"]["Memory"] = 128 * 2**20
        assert config_hash(spec(changed)) != config_hash(spec())
        changed = copy.deepcopy(container())
        changed["Config"]["Env"].append("NEW=1")
        assert config_hash(spec(changed)) != config_hash(spec())

    def test_release_prefers_the_digest_of_the_deployed_repository(self) -> None:
        img = image()
        img["RepoDigests"] = ["mirror/app@sha256:" + "4" * 64, "app@sha256:" + "3" * 64]
        release = release_of("t", spec(img=img))
        assert release.image == "app@sha256:" + "3" * 64
        assert release.image_ref == "app:v1"
