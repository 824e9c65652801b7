"""The swarm pieces that need no engine: release identity, task judgement, state naming."""

from __future__ import annotations

import json
from typing import Any

import pytest

from watchdogd.engine.docker_api import DockerEngine
from watchdogd.engine.swarm_spec import (
    desired_replicas,
    repository,
    runs_spec,
    spec_fingerprint,
    split_digest,
)
from watchdogd.sources.swarm_tasks import judge
from watchdogd.targets.swarm import SwarmDriver
from watchdogd.watch.swarm_document import STATE_LABEL, Document, config_name

DIGEST = "sha256:" + "ab" * 32


def spec(image: str = "app:v1", env: list[str] | None = None, force: int = 0) -> dict[str, Any]:
    return {
        "Name": "web",
        "Labels": {"team": "shop"},
        "TaskTemplate": {
            "ContainerSpec": {"Image": image, "Env": env or []},
            "ForceUpdate": force,
        },
        "Mode": {"Replicated": {"Replicas": 3}},
        "EndpointSpec": {"Ports": [{"TargetPort": 8080, "PublishMode": "host"}]},
    }


def task(
    state: str, image: str = "app:v1", desired: str = "running", task_id: str = "t1"
) -> dict[str, Any]:
    return {
        "ID": task_id,
        "Slot": 1,
        "DesiredState": desired,
        "Spec": {"ContainerSpec": {"Image": image, "Env": []}, "ForceUpdate": 0},
        "Status": {"State": state, "Err": "task: non-zero exit (1)"},
    }


class TestReleaseIdentity:
    def test_digest_and_repository_of_a_reference(self) -> None:
        """A pinned reference splits into name and digest; the repository drops tag and digest."""
        assert split_digest(f"reg:5000/app:v1@{DIGEST}") == ("reg:5000/app:v1", DIGEST)
        assert split_digest("app:v1") == ("app:v1", None)
        assert repository(f"reg:5000/team/app:v1@{DIGEST}") == "reg:5000/team/app"

    def test_fingerprint_ignores_image_force_and_labels(self) -> None:
        """Same config, another image, a forced redeploy or new labels: same fingerprint;
        another env: another."""
        base = spec_fingerprint(spec())
        relabelled = dict(spec("app:v2", force=3), Labels={"other": "x"})
        assert spec_fingerprint(relabelled) == base
        assert spec_fingerprint(spec(env=["A=1"])) != base

    async def test_a_pinned_digest_is_the_image(self) -> None:
        """``app:v1@sha256:…`` is released as ``app@sha256:…`` without asking the engine."""
        driver = SwarmDriver("web", "web", DockerEngine(host="unix:///nonexistent.sock"))
        release = await driver.release_of(spec(f"app:v1@{DIGEST}"))
        assert (release.image, release.image_ref) == (f"app@{DIGEST}", "app:v1")
        assert release.spec["TaskTemplate"]["ContainerSpec"]["Image"] == f"app:v1@{DIGEST}"


class TestTasks:
    def test_a_task_belongs_to_the_spec_it_was_made_from(self) -> None:
        """Container spec and force counter decide; replicas count from the mode."""
        assert runs_spec(task("running"), spec())
        assert not runs_spec(task("running", image="app:v2"), spec())
        assert not runs_spec(task("running"), spec(force=1))
        assert desired_replicas({"Spec": spec()}, []) == 3
        global_mode = {"Spec": dict(spec(), Mode={"Global": {}})}
        assert desired_replicas(global_mode, [task("running"), task("starting")]) == 2

    def test_running_tasks_pass_and_tasks_that_ended_fail_once(self) -> None:
        """Running replicas of the current spec are ok; one that failed or completed by itself
        fails once, after the ok samples; the old spec's and stopped tasks give nothing."""
        service = {"ID": "s", "Spec": spec()}
        tasks = [
            task("complete", desired="shutdown", task_id="t1"),
            task("running", task_id="t2"),
            task("starting", task_id="t3"),
            task("shutdown", desired="shutdown", task_id="t4"),
            task("failed", image="app:v0", desired="shutdown", task_id="t5"),
        ]
        seen: set[str] = set()
        outcomes = judge(service, tasks, seen)
        assert [ok for ok, _ in outcomes] == [True, False]
        assert "web.1 (t1): complete, task: non-zero exit (1)" in outcomes[1][1]
        assert judge(service, tasks, seen) == [(True, "")]

    def test_a_job_may_complete(self) -> None:
        """A job's task that completes is done, not failed; one that fails still fails."""
        service = {"ID": "s", "Spec": dict(spec(), Mode={"ReplicatedJob": {}})}
        tasks = [task("complete", task_id="t1"), task("failed", task_id="t2")]
        assert [ok for ok, _ in judge(service, tasks, set())] == [False]

    def test_a_paused_update_fails(self) -> None:
        """Swarm paused the update (its FailureAction): that is a failed sample."""
        service = {
            "ID": "s",
            "Spec": spec(),
            "UpdateStatus": {"State": "paused", "Message": "update paused due to failure"},
        }
        assert judge(service, [], set()) == [(False, "web: paused: update paused due to failure")]


class TestStateNaming:
    def test_config_names_fit_swarm_limits(self) -> None:
        """Names stay within Swarm's 64 characters; long ones keep a hash to stay apart."""
        assert config_name("api") == "watchdogd-state.api"
        long_a, long_b = config_name("a" * 63), config_name("a" * 62 + "b")
        assert len(long_a) <= 64
        assert len(long_b) <= 64
        assert long_a != long_b

    @pytest.mark.parametrize("text", ["not json", '{"known_good": 3, "bogus": 1}'])
    def test_an_unreadable_document_starts_afresh(self, text: str) -> None:
        """A corrupt state label is logged and read as empty rather than crashing."""
        document = Document.from_config({"ID": "c", "Spec": {"Labels": {STATE_LABEL: text}}})
        assert document.incident is None
        assert document.history == []
        assert json.loads(document.dump())["schema"] == 1
