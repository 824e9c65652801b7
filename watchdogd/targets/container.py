"""A single container, by name: read its release, and swap it for a recorded one.

The swap keeps the window without a running container short (REFERENCE.md measured ~0.34 s for
a pre-created container's stop + start against ~0.42 s for rm + run, plus the image's stop
time): the new container is created under a temporary name while the old one still serves,
then the old one is stopped (it must free its published host ports first), both are renamed,
and the new one is started. Until the old container is removed it stays, renamed, as the way
back. Names tell a later call what a crash left behind:

    <name>-wd-new-<random>   created, never promoted: removed
    <name>-wd-old-<shortid>  the previous container: renamed back if <name> is missing,
                             removed once <name> runs
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Coroutine, Sequence
from typing import Any

import structlog

from watchdogd.engine.docker_api import DockerEngine
from watchdogd.errors import TargetError
from watchdogd.model import Release, Starts
from watchdogd.targets.base import ExecResult
from watchdogd.targets.recreate import (
    config_hash,
    create_plan,
    is_anonymous_volume,
    release_of,
    snapshot,
)
from watchdogd.targets.stopped import StopMemory

log = structlog.get_logger(__name__)

NEW_MARK = "-wd-new-"
OLD_MARK = "-wd-old-"


async def inspect_with_spec(
    engine: DockerEngine, container: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The container's inspect output and its snapshot (see ``recreate.snapshot``)."""
    inspect = await engine.inspect_container(container)
    if inspect is None:
        return None
    image = await engine.inspect_image(inspect["Image"])
    return inspect, snapshot(inspect, image)


def is_running(inspect: dict[str, Any]) -> bool:
    state = inspect.get("State") or {}
    return bool(state.get("Running")) or bool(state.get("Restarting"))


async def health_of(engine: DockerEngine, container: str) -> bool | None:
    inspect = await engine.inspect_container(container)
    if inspect is None or not is_running(inspect):
        return False
    status = str(((inspect.get("State") or {}).get("Health") or {}).get("Status") or "")
    return {"healthy": True, "unhealthy": False}.get(status)


async def resolve_image(engine: DockerEngine, release: Release, spec: dict[str, Any]) -> str:
    """The local image ID of ``release``; a clear ``TargetError`` when it is gone."""
    image = await engine.inspect_image(release.image)
    if image is None and spec.get("Image"):
        # A digest reference stops resolving once its repository tag is removed, yet the
        # image may still be here under its ID.
        by_id = await engine.inspect_image(spec["Image"])
        if by_id is not None and release.image in {by_id["Id"], *(by_id.get("RepoDigests") or [])}:
            image = by_id
    if image is None:
        raise TargetError(
            f"image {release.image} ({release.label}) of release {release.id} is no longer on "
            f"this host; pull it (docker pull {release.label}) or restore another release"
        )
    return str(image["Id"])


async def _create_ref(engine: DockerEngine, spec: dict[str, Any], image_id: str) -> str:
    """Create by the reference the user deployed when it still names this image, so that
    ``docker ps`` shows ``app:v1``, not a bare ID; else by ID."""
    ref = str(spec["Config"].get("Image") or "")
    if ref and not ref.startswith("sha256:"):
        tagged = await engine.inspect_image(ref)
        if tagged is not None and tagged["Id"] == image_id:
            return ref
    return image_id


async def _start_confirmed(engine: DockerEngine, container: str) -> None:
    """Start, then check that the process is still there: a start that returns while the
    entrypoint has already exited counts as a failure too."""
    await engine.start(container)
    inspect = await engine.inspect_container(container)
    if inspect is None or not is_running(inspect):
        state = (inspect or {}).get("State") or {}
        logs = await engine.logs_tail(container)
        raise TargetError(
            f"container {container} exited right after start "
            f"(exit code {state.get('ExitCode')}, {state.get('Error') or 'no error'}): {logs}"
        )


async def recover(engine: DockerEngine, name: str) -> None:
    """Finish or undo a swap of ``name`` that a crash interrupted."""
    leftovers = await engine.names_starting(f"{name}-wd-")
    for temp in (n for n in leftovers if n.startswith(name + NEW_MARK)):
        log.warning("target_swap_leftover_removed", container=temp)
        await engine.remove(temp, force=True)
    olds = [n for n in leftovers if n.startswith(name + OLD_MARK)]
    if not olds:
        return
    current = await engine.inspect_container(name)
    if current is None:
        # Crashed between renaming the old one away and promoting the new one.
        back = olds.pop()
        log.warning("target_swap_recovered", container=name, renamed_back=back)
        await engine.rename(back, name)
        await _start_confirmed(engine, name)
    elif not is_running(current):
        # Crashed after promoting the new one, before starting it: finish, or go back.
        try:
            await _start_confirmed(engine, name)
        except TargetError:
            log.warning("target_swap_recover_start_failed", container=name)
            await engine.remove(name, force=True)
            back = olds.pop()
            await engine.rename(back, name)
            await _start_confirmed(engine, name)
    for old in olds:
        await engine.remove(old, force=True)


async def put_back(
    engine: DockerEngine,
    name: str,
    release: Release,
    spec: dict[str, Any],
    stop_timeout: float,
) -> bool:
    """Make container ``name`` run ``release`` with the configuration in ``spec``.

    Returns False when it already did (nothing changed). On failure the previous container is
    back under ``name`` (running if it ran) and ``TargetError`` is raised.
    """
    await recover(engine, name)
    image_id = await resolve_image(engine, release, spec)
    wanted_hash = config_hash(spec)
    found = await inspect_with_spec(engine, name)
    if found is not None and found[0]["Image"] == image_id and config_hash(found[1]) == wanted_hash:
        if not is_running(found[0]):
            await _start_confirmed(engine, name)
            return True
        return False

    began = time.monotonic()
    plan = create_plan(spec, await _create_ref(engine, spec, image_id), await engine.api_version())
    new_id = await _create_temporary(engine, plan.body, f"{name}{NEW_MARK}{secrets.token_hex(4)}")
    try:
        for network, endpoint in plan.connect:
            await engine.connect(new_id, network, endpoint)
        if found is None:
            await engine.rename(new_id, name)
            await _start_confirmed(engine, new_id)
    except BaseException:
        with contextlib.suppress(TargetError):
            await engine.remove(new_id, force=True)
        raise
    if found is None:
        log.info("target_swap_created", container=name, release=release.id)
        return True

    await _uncancellable(
        _swap_in(
            engine,
            name,
            release,
            new_id=new_id,
            found=found,
            stop_timeout=stop_timeout,
            began=began,
        )
    )
    return True


async def _swap_in(
    engine: DockerEngine,
    name: str,
    release: Release,
    *,
    new_id: str,
    found: tuple[dict[str, Any], dict[str, Any]],
    stop_timeout: float,
    began: float,
) -> None:
    """Stop the old container, hand its name to the new one and start it; or put it back."""
    old, old_spec = found
    old_id, was_running = old["Id"], is_running(old)
    stopping = time.monotonic()
    try:
        await engine.stop(old_id, stop_timeout)
        await engine.rename(old_id, f"{name}{OLD_MARK}{old_id[:12]}")
        await engine.rename(new_id, name)
        await _start_confirmed(engine, new_id)
    except TargetError as err:
        try:
            await _revert(
                engine,
                name,
                new_id=new_id,
                old_id=old_id,
                old_spec=old_spec,
                was_running=was_running,
            )
        except TargetError as revert_err:
            raise TargetError(
                f"release {release.id} ({release.label}) did not start in {name} ({err}), and "
                f"putting back the previous container {old_id[:12]} failed too: {revert_err}"
            ) from err
        raise TargetError(
            f"release {release.id} ({release.label}) did not start in {name}; "
            f"the previous container is back: {err}"
        ) from err
    log.info(
        "target_swap_done",
        container=name,
        release=release.id,
        image=release.label,
        seconds=round(time.monotonic() - began, 3),
        # From the old container's stop to the new one running: the window without service.
        gap=round(time.monotonic() - stopping, 3),
    )
    try:
        await engine.remove(old_id)
    except TargetError as err:
        # Harmless: the next restore (or recover) removes it.
        log.warning("target_swap_old_not_removed", container=old_id[:12], error=str(err))
    else:
        await _remove_orphaned_volumes(engine, old, new_id)


async def _remove_orphaned_volumes(engine: DockerEngine, old: dict[str, Any], new_id: str) -> None:
    """Remove the anonymous volumes of the replaced container that the new one does not mount.

    A bad release deployed by ``docker run`` or ``docker compose up --renew-anon-volumes`` got
    fresh anonymous volumes; the restored container mounts the good release's by name, so the
    bad ones would be left behind, nameless, forever. The engine refuses to remove a volume any
    other container still uses, and that refusal is kept."""
    new = await engine.inspect_container(new_id)
    kept = {str(m.get("Name") or "") for m in (new or {}).get("Mounts") or []}
    for mount in old.get("Mounts") or []:
        name = str(mount.get("Name") or "")
        if mount.get("Type") != "volume" or not is_anonymous_volume(name) or name in kept:
            continue
        try:
            await engine.remove_volume(name)
        except TargetError as err:
            log.info("target_swap_volume_kept", volume=name[:12], reason=str(err))
        else:
            log.info("target_swap_volume_removed", volume=name[:12])


# Swaps whose caller was cancelled but that still run to their end (strong references, so
# that none is garbage-collected mid-flight).
_in_flight: set[asyncio.Task[None]] = set()


def _keep_in_flight(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    task = asyncio.ensure_future(work)
    _in_flight.add(task)
    task.add_done_callback(_finished)
    return task


async def _uncancellable(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` to its end even if the caller is cancelled: the docker calls already made
    run on in their threads, and a swap cut in half (old stopped, new not started) is worse
    than one that finishes after the caller has gone."""
    await asyncio.shield(_keep_in_flight(work))


async def _create_temporary(engine: DockerEngine, body: dict[str, Any], name: str) -> str:
    """Create the new container under its temporary name. A caller cancelled meanwhile
    leaves nothing behind: the engine creates the container all the same (the call runs on
    in its thread), so it is removed once it exists."""
    creating = asyncio.ensure_future(engine.create(body, name))
    try:
        return await asyncio.shield(creating)
    except asyncio.CancelledError:
        _keep_in_flight(_remove_once_created(engine, creating))
        raise


async def _remove_once_created(engine: DockerEngine, creating: asyncio.Future[str]) -> None:
    with contextlib.suppress(TargetError):
        await engine.remove(await creating, force=True)
        log.info("target_swap_cancelled_new_removed", container=creating.result()[:12])


def _finished(task: asyncio.Task[None]) -> None:
    _in_flight.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # Re-raised to the caller when it still waits; logged for the one that was cancelled.
        log.debug("target_swap_finished_with_error", error=str(task.exception()))


async def _revert(
    engine: DockerEngine,
    name: str,
    *,
    new_id: str,
    old_id: str,
    old_spec: dict[str, Any],
    was_running: bool,
) -> None:
    """Remove the new container and put the old one back under its name."""
    with contextlib.suppress(TargetError):
        await engine.remove(new_id, force=True)
    old = await engine.inspect_container(old_id)
    if old is None:
        # The old container removed itself on stop (--rm): rebuild it from its snapshot.
        log.warning("target_swap_old_recreated", container=name)
        plan = create_plan(old_spec, old_spec["Image"], await engine.api_version())
        old_id = await engine.create(plan.body, name)
        for network, endpoint in plan.connect:
            await engine.connect(old_id, network, endpoint)
    elif old["Name"].lstrip("/") != name:
        await engine.rename(old_id, name)
    if was_running:
        await _start_confirmed(engine, old_id)
    log.warning("target_swap_reverted", container=name)


class ContainerDriver:
    """A target that is one container, found by name."""

    def __init__(self, target: str, container: str, engine: DockerEngine) -> None:
        self.target = target
        self.container = container
        self.engine = engine
        self._lock = asyncio.Lock()
        self._starts: Starts | None = None
        self._stops = StopMemory()

    async def current(self) -> Release | None:
        found = await inspect_with_spec(self.engine, self.container)
        if found is None:
            self._starts = None
            return None
        stopped = await self._stops.stopped_on_request(self.engine, [found[0]])
        self._starts = Starts.of([found[0]], stopped)
        return release_of(self.target, found[1])

    def starts(self) -> Starts | None:
        return self._starts

    async def restore(self, release: Release, stop_timeout: float) -> None:
        if not release.spec:
            raise TargetError(f"release {release.id} has no recorded container configuration")
        async with self._lock:
            await put_back(self.engine, self.container, release, release.spec, stop_timeout)

    async def healthy(self) -> bool | None:
        return await health_of(self.engine, self.container)

    async def exec(
        self,
        command: Sequence[str],
        *,
        user: str | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        return await self.engine.exec(
            self.container, command, user=user, workdir=workdir, env=env, timeout=timeout
        )
