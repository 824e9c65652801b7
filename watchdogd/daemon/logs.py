"""Logging through structlog: JSON off a TTY, readable on one, secrets redacted at the logger.

Redaction sits in the processor chain, so no call site can forget it: every string value of
every event is scrubbed by ``watchdogd.redact`` (the secrets registered with ``set_secrets``:
values that came from ``${ENV}`` and the API token; and the userinfo and query string of every
URL) before it is rendered. The standard library's loggers (aiohttp's, asyncio's) are routed
into the same chain, so their errors are one JSON line too, the traceback a field of it.

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
from aiohttp.http_exceptions import HttpProcessingError

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


class _ToStructlog(logging.Handler):
    """Hands standard-library log records (aiohttp, asyncio) to structlog."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            level = record.levelno
            error = record.exc_info[1] if record.exc_info else None
            if isinstance(error, HttpProcessingError) and error.code < 500:
                # A client's malformed request, answered with a 4xx: not our error, and one
                # traceback per bad request would let anyone fill the log.
                level, fields["error"] = logging.DEBUG, str(error).replace("\n", " ")[:300]
            elif record.exc_info and record.exc_info[0] is not None:
                fields["exc_info"] = record.exc_info
            structlog.get_logger(record.name).log(level, record.getMessage(), **fields)
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


def _route_standard_logging(level: str) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ToStructlog)]:
        root.removeHandler(handler)
    root.addHandler(_ToStructlog())
    # Libraries' info lines (httpx logs every request) would drown ours: warnings and up.
    root.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]))


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
    _route_standard_logging(level)
