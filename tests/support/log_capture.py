"""The daemon's logging set up to write JSON lines into a string, for tests that read what
would reach the log; undone afterwards, so the next test gets pytest's own logging."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Iterator

import structlog

from watchdogd.daemon import logs
from watchdogd.redact import set_secrets

__all__ = ["json_logs"]


@contextlib.contextmanager
def json_logs(secrets: Iterable[str] = ()) -> Iterator[io.StringIO]:
    """``logs.configure`` into a string stream, with ``secrets`` registered."""
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    set_secrets(secrets)
    try:
        yield stream
    finally:
        set_secrets(())
        structlog.reset_defaults()
        root = logging.getLogger()
        for handler in list(root.handlers):
            if type(handler).__module__ == logs.__name__:
                root.removeHandler(handler)
