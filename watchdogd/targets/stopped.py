"""Which of a release's stopped containers somebody stopped on purpose.

A container that exited reads, to its probes, exactly like a crash. But an operator's ``docker
stop`` (or ``docker kill``, ``docker compose stop``) is a decision, not a failure: Docker's own
restart policies leave such a container alone, and a watchdogd that restored the previous
release would overrule the operator with a rollback. Inspect cannot tell the two apart; the
engine's events can: a stop on request leaves a ``stop`` event (or a ``kill`` with an ending
signal) after the container's last start, a crash leaves neither.

The engine is asked once per stop (by container id and ``State.FinishedAt``), on the first look
that finds the container exited. An answer it could not give fails the look (``TargetError``,
as an engine away does) and is asked again next look: a stopping engine stops the containers
and may still answer inspect but no longer this question, and an exit nobody can explain is
no evidence against the release (the soak rolled a good one back for it, seed 16).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from watchdogd.errors import TargetError

if TYPE_CHECKING:
    from watchdogd.engine.docker_api import DockerEngine

log = structlog.get_logger(__name__)


def unix_seconds(docker_time: str) -> float | None:
    """Seconds since the epoch from the engine's RFC 3339 time (``2026-12-01T03:09:56.35Z``,
    nanoseconds allowed); None for anything else."""
    head, _, fraction = docker_time.removesuffix("Z").partition(".")
    try:
        whole = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
        return whole + (float(f"0.{fraction}") if fraction else 0.0)
    except ValueError:
        return None


class StopMemory:
    """One driver's answers, kept for the containers it still sees."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, str], bool] = {}

    async def stopped_on_request(
        self, engine: DockerEngine, inspects: Iterable[Mapping[str, Any]]
    ) -> frozenset[str]:
        """The ids among ``inspects`` that exited because somebody asked the engine to stop
        them since their last start; ``TargetError`` when the engine could not say for one."""
        answers: dict[tuple[str, str], bool] = {}
        unanswered: list[str] = []
        for inspect in inspects:
            state = inspect.get("State") or {}
            if state.get("Status") != "exited":
                continue
            key = (str(inspect.get("Id", "")), str(state.get("FinishedAt", "")))
            answer = self._answers.get(key)
            if answer is None:
                answer = await self._ask(engine, key[0], str(state.get("StartedAt", "")))
            if answer is not None:
                answers[key] = answer
            else:
                unanswered.append(key[0][:12])
        self._answers = answers
        if unanswered:
            raise TargetError(f"the engine cannot say why {', '.join(unanswered)} stopped")
        return frozenset(cid for (cid, _), stopped in answers.items() if stopped)

    @staticmethod
    async def _ask(engine: DockerEngine, container: str, started_at: str) -> bool | None:
        since = unix_seconds(started_at)
        if since is None or since <= 0:
            return False  # never started, or a time nobody can compare: a stop says nothing
        try:
            return await engine.stop_requested(container, since)
        except TargetError as err:
            log.debug("target_stop_cause_unknown", container=container, error=str(err))
            return None
