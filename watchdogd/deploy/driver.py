"""The target driver of a target with ``traffic:``: the ordinary driver, except while a deploy
has users on green.

Then the release that "runs" is green (so the controller's windows, the playbook's bad release
and the quarantine are green's), ``exec`` steps run in green, and ``restore`` is a switch back
to blue instead of a re-create. Outside a deploy every call goes to the wrapped driver, so the
target behaves as it does without ``traffic:`` (a deploy by someone else is re-created as
today).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from watchdogd.core.deploy_plan import GREEN_SERVING, Stage
from watchdogd.deploy import green as containers
from watchdogd.deploy.deployment import Deployment
from watchdogd.errors import TargetError, WatchdogError
from watchdogd.model import Release, Starts
from watchdogd.targets.base import ExecResult, TargetDriver
from watchdogd.targets.stopped import StopMemory

if TYPE_CHECKING:
    # Types only: the Docker SDK loads when a deploy touches Docker, not at start (issue #16).
    from watchdogd.engine.docker_api import DockerEngine


class TrafficDriver:
    def __init__(
        self,
        inner: TargetDriver,
        engine: DockerEngine,
        active: Callable[[], Deployment | None],
        repoint: Callable[[], Awaitable[None]],
    ) -> None:
        self.inner = inner
        self.target = inner.target
        self._engine = engine
        self._active = active
        self._repoint = repoint
        self._stops = StopMemory()
        self._green_held: frozenset[str] = frozenset()

    def _serving_green(self) -> Deployment | None:
        deployment = self._active()
        if deployment is not None and deployment.stage in GREEN_SERVING:
            return deployment
        return None

    def _green_involved(self) -> Deployment | None:
        """Green serves, or is being switched away from: it is still the bad release."""
        deployment = self._active()
        if deployment is not None and (
            deployment.stage in GREEN_SERVING or deployment.stage is Stage.ROLLING_BACK
        ):
            return deployment
        return None

    async def current(self) -> Release | None:
        deployment = self._green_involved()
        if deployment is not None and deployment.green.release is not None:
            self._green_held = await self._held(deployment.green.container)
            return deployment.green.release
        return await self.inner.current()

    async def _held(self, container: str) -> frozenset[str]:
        """Green's container when somebody stopped or paused it: a stopping engine stops it
        too, and the controller must not blame green for that (found by the soak, seed 16).
        An engine away, or one that cannot say why green stopped, fails the look
        (``TargetError``): it took green with it."""
        inspect = await self._engine.inspect_container(container)
        if inspect is None:
            return frozenset()
        stopped = await self._stops.stopped_on_request(self._engine, [inspect])
        return Starts.of([inspect], stopped).held

    def starts(self) -> Starts | None:
        if self._green_involved() is None:
            return self.inner.starts()
        # Green's containers come and go by the deploy's own hand: only what somebody holds
        # is said, never a start (which would read as somebody's restart).
        return Starts(started=frozenset(), by_policy=0, held=self._green_held)

    async def restore(self, release: Release, stop_timeout: float) -> None:
        deployment = self._green_involved()
        if deployment is not None:
            try:
                await deployment.roll_back(deployment.reason or "rolled back by the playbook")
            except WatchdogError as err:
                # The rollback step fails, loudly; the switch stays wanted, so the reconciler
                # applies it as soon as HAProxy answers again.
                raise TargetError(f"the switch back to blue was not applied: {err}") from err
            blue = deployment.blue.release
            if blue is not None and blue.id == release.id:
                return
        await self.inner.restore(release, stop_timeout)
        # A re-create may bring back another host port than the one HAProxy sends to.
        await self._repoint()

    async def healthy(self) -> bool | None:
        deployment = self._serving_green()
        if deployment is not None:
            return await containers.healthy(self._engine, deployment.green.container)
        return await self.inner.healthy()

    async def exec(
        self,
        command: Sequence[str],
        *,
        user: str | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        deployment = self._green_involved()
        if deployment is not None:
            # The bad release is green, still running while it drains.
            return await self._engine.exec(
                deployment.green.container,
                command,
                user=user,
                workdir=workdir,
                env=env,
                timeout=timeout,
            )
        return await self.inner.exec(command, user=user, workdir=workdir, env=env, timeout=timeout)
