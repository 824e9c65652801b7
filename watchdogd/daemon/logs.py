"""Logging through structlog: JSON off a TTY, readable on one, secrets redacted at the logger.

Redaction sits in the processor chain, so no call site can forget it: every string value of
every event is scrubbed by ``watchdogd.redact`` (the secrets registered with ``set_secrets``:
values that came from ``${ENV}`` and the API token; and the userinfo and query string of every
URL) before it is rendered.

One event style: the event is a snake_case name (``config_reloaded``, ``target_state``,
``step_failed``), and everything else goes into fields (``target=``, ``reason=``), so a log
query matches an event by name and never by a sentence.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from watchdogd.redact import redact, set_secrets

__all__ = ["configure", "set_secrets"]


def _redact_processor(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
        elif not isinstance(value, int | float | bool) and value is not None:
            # A structure stays a structure in the JSON log unless it holds something to hide.
            text = str(value)
            hidden = redact(text)
            if hidden != text:
                event[key] = hidden
    return event


def configure(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Set up structlog once for the process; ``fmt`` is ``json``, ``console`` or ``auto``."""
    out = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
