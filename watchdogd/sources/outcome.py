"""Whose fault is a failed request: the target's (a failure) or the path's (``unknown``)?

A probe that fails because the *target* misbehaves is evidence against the release; one that
fails because watchdogd could not reach the target's address at all, or ran out of its own
resources, says nothing about the release, and a rollback could not help. The table (also in
docs/signals-and-gates.md):

=======================================  ===========  =====================================
what happened                            verdict      why
=======================================  ===========  =====================================
wrong status, body not matching          failure      the target answered badly
timeout                                  failure      the target accepted and did not answer
connection refused / reset / closed      failure      nothing listens, or it died mid-answer
host unreachable (EHOSTUNREACH)          failure      the target's host (container) is gone
TLS handshake or certificate error       failure      the target's TLS is broken
DNS lookup failed                        unknown      the name service, not the target
network unreachable (ENETUNREACH)        unknown      no route from watchdogd: the path
EMFILE, ENFILE, ENOBUFS, ENOMEM,         unknown      watchdogd's own resources (file
EADDRNOTAVAIL, EAGAIN                                 descriptors, buffers, ports)
=======================================  ===========  =====================================
"""

from __future__ import annotations

import errno

import aiohttp

from watchdogd.redact import describe_error

__all__ = ["LOCAL_ERRNOS", "PATH_ERRNOS", "path_fault"]

LOCAL_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL, errno.EAGAIN}
)
"""watchdogd's own limits: the target cannot have caused them."""

PATH_ERRNOS = frozenset({errno.ENETUNREACH})
"""No route from watchdogd to the target's network: the path, not the target."""


def path_fault(err: BaseException) -> str | None:
    """The reason to report ``unknown`` for ``err``, or None when it is the target's failure."""
    if isinstance(err, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed (the name service, not the target: unknown)"
    os_error = err.os_error if isinstance(err, aiohttp.ClientConnectorError) else err
    if isinstance(os_error, OSError) and not isinstance(os_error, TimeoutError):
        code = os_error.errno
        if code in LOCAL_ERRNOS:
            return f"{describe_error(err)}: watchdogd's own resources, not the target: unknown"
        if code in PATH_ERRNOS:
            return f"{describe_error(err)}: no route to the target's network: unknown"
    return None
