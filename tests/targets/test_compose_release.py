"""A Compose service's release as a blue-green deploy records it: green under the replica's
name, so that its fingerprint and its re-create match the promoted replica's."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.targets.test_recreate import spec
from watchdogd.errors import TargetError
from watchdogd.targets.compose_release import renamed, replica_spec, service_release
from watchdogd.targets.recreate import release_of


def replica(name: str, aliases: list[str]) -> dict[str, Any]:
    found = copy.deepcopy(spec())
    found["Name"] = "/" + name
    for endpoint in found["NetworkSettings"]["Networks"].values():
        endpoint["Aliases"] = list(aliases)
    return found


class TestGreenAsTheService:
    def test_green_recorded_under_blues_name_fingerprints_as_the_promoted_replica(self) -> None:
        # Compose v2 gives each replica its own name as an alias: green, started from blue's
        # configuration, carries blue's; once renamed to blue's name it is the same replica.
        green = replica("shop-web-1-green-abc123", ["web", "shop-web-1"])
        promoted = replica("shop-web-1", ["web", "shop-web-1"])

        recorded = service_release("web", "shop", "web", renamed(green, "shop-web-1"))
        after = service_release("web", "shop", "web", promoted)

        assert recorded.id == after.id
        assert release_of("web", green).id != after.id  # what a green-named record would be
        assert [r["Name"] for r in recorded.spec["replicas"]] == ["/shop-web-1"]
        assert recorded.spec["project"] == "shop"
        assert recorded.spec["service"] == "web"

    def test_renaming_maps_only_the_old_name_among_the_aliases(self) -> None:
        green = replica("shop-web-1-green-abc123", ["web", "shop-web-1-green-abc123"])

        result = renamed(green, "shop-web-1")

        aliases = [e["Aliases"] for e in result["NetworkSettings"]["Networks"].values()]
        assert aliases
        assert all(a == ["web", "shop-web-1"] for a in aliases)
        assert green["Name"] == "/shop-web-1-green-abc123"  # the input is not changed

    def test_green_starts_from_the_one_replica_of_a_compose_release(self) -> None:
        blue = replica("shop-web-1", ["web"])
        release = service_release("web", "shop", "web", blue)

        assert replica_spec(release.spec) == blue
        assert replica_spec(blue) is blue  # a container's snapshot is its own spec

    def test_a_compose_release_without_replicas_is_a_clear_error(self) -> None:
        with pytest.raises(TargetError, match="no replica"):
            replica_spec({"project": "shop", "service": "web", "replicas": []})
