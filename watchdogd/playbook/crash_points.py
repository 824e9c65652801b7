"""TEST-ONLY crash points: the crash tests must SIGKILL the daemon at an exact point.

``tests/e2e/test_crash_resume.py`` kills it while a playbook step is in flight
(``PAUSE_STEP_ENV``: the step's index); ``tests/deploy/test_deploy_crash.py`` right after a
deploy journaled a stage (``PAUSE_STAGE_ENV``: the stage's name). With the variable and
``PAUSE_FILE_ENV`` set, the daemon writes the marker file there and then sleeps, so that the
test can kill it. Never set these in production: the playbook or the deploy would hang.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import structlog

from watchdogd.config.steps import Step
from watchdogd.playbook.runner import BeforeStep

log = structlog.get_logger(__name__)

PAUSE_STEP_ENV = "WATCHDOGD_TEST_PAUSE_STEP"
PAUSE_STAGE_ENV = "WATCHDOGD_TEST_PAUSE_DEPLOY_STAGE"
PAUSE_FILE_ENV = "WATCHDOGD_TEST_PAUSE_FILE"
_FOREVER = 3600


def pause_hook_for_tests() -> BeforeStep | None:
    """The pause-at-step hook (the runner's ``before_step``, called after the step's
    ``started`` row is committed, before it acts), or None when the variables are unset."""
    index, marker = os.environ.get(PAUSE_STEP_ENV), os.environ.get(PAUSE_FILE_ENV)
    if index is None or not marker:
        return None
    pause_at = int(index)
    log.warning("test_only_pause_hook_enabled", step=pause_at, marker=marker)

    async def pause(step_index: int, step: Step) -> None:
        if step_index != pause_at:
            return
        await asyncio.to_thread(_write_marker, Path(marker), f"{step_index} {step.action}\n")
        await asyncio.sleep(_FOREVER)

    return pause


async def pause_at_stage(stage: str) -> None:
    """Sleep for good once a deploy journaled ``stage``, if a crash test asks for it."""
    wanted, marker = os.environ.get(PAUSE_STAGE_ENV), os.environ.get(PAUSE_FILE_ENV)
    if wanted == stage and marker:
        log.warning("test_only_deploy_pause", stage=stage, marker=marker)
        await asyncio.to_thread(_write_marker, Path(marker), stage)
        await asyncio.sleep(_FOREVER)


def _write_marker(path: Path, text: str) -> None:
    """Whole or not at all: the test reads the marker as soon as it exists."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)
