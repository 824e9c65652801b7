"""A container's release must not change when only the engine's way of writing it does."""

from __future__ import annotations

import copy
from typing import Any

from watchdogd.targets.recreate import config_hash, release_of

SPEC: dict[str, Any] = {
    "Id": "0123456789ab" + "0" * 52,
    "Name": "/web",
    "Created": "2026-01-01T00:00:00Z",
    "Image": "sha256:" + "1" * 64,
    "Config": {"Image": "app:v1", "Env": ["MODE=ok"], "Labels": {}, "Hostname": "0123456789ab"},
    "HostConfig": {
        "Dns": None,
        "DnsOptions": None,
        "DnsSearch": None,
        "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0},
        "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
    },
    "NetworkSettings": {
        "Networks": {"bridge": {"EndpointID": "a" * 64, "NetworkID": "b" * 64, "Aliases": None}}
    },
    "Mounts": [],
    "ImageDefaults": {"Env": [], "Labels": {}},
    "ImageRepoDigests": [],
}


class TestReleaseIdentityAcrossEngineRestarts:
    def test_empty_lists_after_a_restart_are_the_same_release(self) -> None:
        """HostConfig.Dns null at run and [] after an engine restart: one release."""
        restarted = copy.deepcopy(SPEC)
        restarted["HostConfig"] |= {"Dns": [], "DnsOptions": [], "DnsSearch": []}
        restarted["NetworkSettings"]["Networks"]["bridge"] |= {
            "EndpointID": "c" * 64,
            "NetworkID": "d" * 64,
        }
        assert config_hash(restarted) == config_hash(SPEC)
        assert release_of("web", restarted).id == release_of("web", SPEC).id

    def test_a_setting_with_a_value_still_counts(self) -> None:
        """A DNS server that was set is a different configuration."""
        changed = copy.deepcopy(SPEC)
        changed["HostConfig"]["Dns"] = ["10.0.0.53"]
        assert config_hash(changed) != config_hash(SPEC)
