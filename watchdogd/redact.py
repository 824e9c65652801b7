"""The one redaction of secrets: what may leave the daemon in a log line, an event, a
notification or an error message.

Three rules, applied by :func:`redact`:

* every known secret value is replaced by ``***``: the config's ``${ENV}`` values and the API
  token (registered process-wide with :func:`set_secrets`), plus any extra values a caller
  knows of (a token an auth flow extracted a second ago);
* every URL in the text loses its userinfo and its query string (:func:`safe_url`): a
  configured URL may carry ``?apikey=…`` or ``user:password@`` that was never an ``${ENV}``;
  an Apprise URL keeps its tokens in the host and path too (``tgram://<bot token>/<chat>``),
  so the config registers those as secrets as well (:func:`notifier_secrets`);
* a failed request is described by :func:`describe_error` from parts that cannot carry a
  secret (a status code, an exception class, an errno name), never by the exception's
  message, which for aiohttp includes the request URL.

A child process (a ``command`` step, a release directory's ``restart``) gets
:func:`child_environment`: never the daemon's own, which holds ``WATCHDOGD_TOKEN`` and every
variable the config's ``${VAR}`` expanded.

The logger applies :func:`redact` to every event (``watchdogd.logs``), the playbook runner to
every step detail before it is journaled or sent, the sources to every failure reason.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "CHILD_INHERITS",
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "child_environment",
    "describe_error",
    "notifier_secrets",
    "redact",
    "redact_urls",
    "registered",
    "safe_url",
    "set_secrets",
    "url_secrets",
]

REDACTED = "***"
#: Shorter values are not redacted: replacing every "a" or "10" would garble the message and
#: hide nothing.
MIN_SECRET_LENGTH = 3

# scheme://anything-up-to-whitespace-or-a-quote: what an error message or a log line may quote.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")

#: An Apprise URL's host or path segment this long is taken for a token: Slack's, Telegram's,
#: Discord's and Gotify's all are; shorter ones are channel or topic names, and redacting every
#: "api" or "hook" would garble messages and hide nothing.
MIN_TOKEN_SEGMENT = 8

#: The only variables of the daemon's environment a child process inherits.
CHILD_INHERITS = ("PATH", "LANG")

_secrets: tuple[str, ...] = ()


def set_secrets(values: Iterable[str]) -> None:
    """Replace the process-wide set of values no output may contain."""
    global _secrets  # noqa: PLW0603 - one process-wide list, read by every redact() call
    _secrets = _longest_first(values)


def registered() -> tuple[str, ...]:
    """The secrets :func:`set_secrets` registered, longest first."""
    return _secrets


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` without URL credentials and query strings, and with every registered secret
    (and every value of ``secrets``) replaced by ``***``, longest first so overlaps go."""
    if "://" in text:
        text = redact_urls(text)
    for secret in (*_longest_first(secrets or ()), *_secrets):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_urls(text: str) -> str:
    """Every URL in ``text`` as :func:`safe_url` shows it."""
    return _URL.sub(lambda match: safe_url(match.group(0)), text)


def safe_url(url: str) -> str:
    """The URL without userinfo, query string and fragment, which may carry tokens."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is not a number, a broken IPv6 literal
        return url.partition("://")[0] + "://" + REDACTED
    if ":" in host:
        host = f"[{host}]"
    marker = "?" + REDACTED if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{marker}"


def url_secrets(url: str) -> list[str]:
    """The parts of a configured URL that may be credentials: the password and every query
    value. A server that echoes its request (``denied: /hook?token=…``) quotes them without
    the scheme that :func:`redact_urls` recognises."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    values = [value for _key, value in parse_qsl(parts.query, keep_blank_values=False)]
    return [*values, *([password] if password else [])]


def notifier_secrets(url: str, json_schemes: Iterable[str]) -> list[str]:
    """What of a notifier's URL no output may show. A JSON webhook is an ordinary URL
    (:func:`url_secrets`). Any other scheme is Apprise's, which writes tokens where a URL has
    its user, host and path: besides the password and the query values, every one of those
    of :data:`MIN_TOKEN_SEGMENT` characters or more that is not a DNS name (has no dot)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() in json_schemes:
        return url_secrets(url)
    location = re.split(r"[?#]", rest, maxsplit=1)[0]
    userinfo, _, address = location.rpartition("@")
    user, _, password = userinfo.partition(":")
    values = [password] if password else []
    # Pushover's user key is the user part: as long as a token, it is one.
    segments = [
        user,
        *(part for piece in address.split("/") for part in (piece, *piece.split(":"))),
    ]
    values += [s for s in segments if len(s) >= MIN_TOKEN_SEGMENT and "." not in s]
    query = rest.partition("?")[2].partition("#")[0]
    values += [value for _key, value in parse_qsl(query, keep_blank_values=False)]
    return list(dict.fromkeys(values))


def describe_error(err: BaseException) -> str:
    """A short, secret-free reason for a failed request: never the exception's message, which
    for aiohttp includes the request URL (and with it any token placed in the URL)."""
    # Here, not at the top: the config check's child process redacts too, and needs no HTTP.
    import aiohttp  # noqa: PLC0415

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


def child_environment(
    *layers: Mapping[str, str], inherit: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A child's environment: ``PATH`` and ``LANG`` from ``inherit`` (the daemon's own by
    default), then each of ``layers`` in order (the step's ``env:``, the ``WATCHDOGD_*``
    context); nothing else of the daemon's."""
    source = os.environ if inherit is None else inherit
    env = {name: source[name] for name in CHILD_INHERITS if name in source}
    env.setdefault("PATH", os.defpath)
    for layer in layers:
        env.update(layer)
    return env


def _errno_text(err: OSError) -> str:
    if err.errno is not None and err.errno in errno.errorcode:
        return os.strerror(err.errno).lower()
    return type(err).__name__


def _longest_first(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True))
