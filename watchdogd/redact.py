"""The one redaction of secrets: what a log line, a failure reason or a journal entry may say.

The config's secrets (values that came from ``${ENV}``, the API token) are registered once with
:func:`set_secrets`; the logger scrubs every event with them (``daemon.logs``), so no call
site can forget it. Values the config never held, such as tokens an auth flow extracted a
second ago, are passed to :func:`redact` by the caller.

A failure detail travels far: into the window, the incident journal, notifications and the
status API. So it is built from parts that cannot carry a secret (a status code, an exception
class, an errno name) and then scrubbed of every known secret value anyway, in case a URL or a
server's error message quoted one.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable

import aiohttp

REDACTED = "***"
#: Shorter values are not redacted: replacing every "a" or "10" would garble the message and
#: hide nothing (the logger uses the same bound).
MIN_SECRET_LENGTH = 3

_registered: tuple[str, ...] = ()


def _longest_first(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True))


def set_secrets(values: Iterable[str]) -> None:
    """Replace the process-wide set of strings no output may contain (the config's secrets)."""
    global _registered  # noqa: PLW0603 - one process-wide list, read by the log processor
    _registered = _longest_first(values)


def registered() -> tuple[str, ...]:
    """The secrets :func:`set_secrets` registered, longest first."""
    return _registered


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret value replaced by ``***``, longest first so overlaps go;
    ``secrets`` defaults to the registered ones."""
    for secret in _registered if secrets is None else _longest_first(secrets):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def describe_error(err: BaseException) -> str:
    """A short, secret-free reason for a failed request: never the exception's message, which
    for aiohttp includes the request URL (and with it any token placed in the URL)."""
    if isinstance(err, TimeoutError):
        return "timeout"
    if isinstance(err, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed"
    if isinstance(err, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate rejected"
    if isinstance(err, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(err, aiohttp.ClientConnectorError):
        return f"connection failed ({_errno_text(err.os_error)})"
    if isinstance(err, aiohttp.ServerDisconnectedError):
        return "server closed the connection"
    if isinstance(err, aiohttp.ClientPayloadError):
        return "broken response body"
    if isinstance(err, aiohttp.ClientResponseError):
        return f"bad response (status {err.status})"
    return type(err).__name__


def _errno_text(err: OSError) -> str:
    if err.errno is not None and err.errno in errno.errorcode:
        return os.strerror(err.errno).lower()
    return type(err).__name__
