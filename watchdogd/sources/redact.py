"""What a source may say about a failure: reasons without secrets.

A failure detail travels far: into the window, the incident journal, notifications and the
status API. So it is built from parts that cannot carry a secret (a status code, an exception
class, an errno name) and then scrubbed of every known secret value anyway, in case a URL or a
server's error message quoted one. The logger redacts the config's secrets too
(``watchdogd.logs``); this module also covers values the logger never hears of, such as tokens
an auth flow extracted a second ago.
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


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***``, longest first so overlaps go."""
    for secret in sorted(
        (s for s in secrets if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True
    ):
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
