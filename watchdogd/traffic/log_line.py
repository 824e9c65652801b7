"""HAProxy's per-request log lines in watchdogd's ``log-format``, parsed: bytes in, values out.

The format, set in HAProxy's ``defaults`` (docs/blue-green.md)::

    log-format "%b/%s %ST %Tr %Ta %tsc"

``%b/%s`` backend/server (``<NOSRV>`` when no server was chosen), ``%ST`` the status sent to
the client (``-1`` when none), ``%Tr`` the server's time to response headers in ms (``-1``
when it sent none), ``%Ta`` the request's total active time in ms (what the user waited, not
counting idle keep-alive time), ``%tsc`` the termination state (``----`` for a normal end,
``CD--`` a client abort, ``SH--`` the server closed before headers, ...).

HAProxy wraps the line in a syslog header. Three framings are understood: the default RFC 3164
(``<134>Nov 30 13:28:47 haproxy[9675]: app/green 200 9 9 ----``), ``format short``
(``<134>app/green ...``) and ``format raw``. Messages that are not requests (``Server app/green
is DOWN, reason: ...``) come through the same socket; :func:`parse` tells them apart.

Parsing is a few ``bytes`` splits: no regex, no decoding of the fields it does not need, and
the ``backend/server`` names are decoded once and cached (there are few of them).
"""

from __future__ import annotations

from typing import Final, NamedTuple

LOG_FORMAT: Final = "%b/%s %ST %Tr %Ta %tsc"

# HAProxy's own messages on the log socket (server and proxy state changes, alerts).
_EVENT_PREFIXES: Final = (b"Server ", b"Proxy ", b"backend ", b"Health check", b"Connect ")
_MAX_NAMES: Final = 4096


class RequestLine(NamedTuple):  # a tuple: three times cheaper to build than a dataclass
    backend: str
    server: str
    status: int
    response_ms: int  # %Tr, -1 when the server sent no response headers
    active_ms: int  # %Ta
    termination: str


class LineKind:
    REQUEST: Final = "request"
    EVENT: Final = "event"
    MALFORMED: Final = "malformed"


class LogLineParser:
    """Parses datagrams; keeps a small cache of decoded ``backend/server`` names."""

    def __init__(self) -> None:
        self._names: dict[bytes, tuple[str, str]] = {}
        self._terminations: dict[bytes, str] = {}

    def message(self, datagram: bytes) -> bytes:
        """The message without its syslog framing."""
        if datagram[:1] != b"<":
            return datagram.rstrip(b"\n")  # format raw
        header_end = datagram.find(b"]: ", 0, 96)
        if header_end >= 0:
            return datagram[header_end + 3 :].rstrip(b"\n")
        # format short: "<PRI>message"
        return datagram[datagram.find(b">") + 1 :].rstrip(b"\n")

    def parse(self, datagram: bytes) -> RequestLine | str:
        """A :class:`RequestLine`, or :attr:`LineKind.EVENT` / :attr:`LineKind.MALFORMED`."""
        message = self.message(datagram)
        fields = message.split(b" ")
        if len(fields) != 5:
            return LineKind.EVENT if message.startswith(_EVENT_PREFIXES) else LineKind.MALFORMED
        names = self._names.get(fields[0])
        if names is None:
            names = self._decode_names(fields[0])
            if names is None:
                return LineKind.MALFORMED
        try:
            status = int(fields[1])
            response_ms = int(fields[2])
            active_ms = int(fields[3])
        except ValueError:
            return LineKind.MALFORMED
        if active_ms < 0:
            return LineKind.MALFORMED
        termination = self._terminations.get(fields[4])
        if termination is None:
            termination = fields[4].decode("ascii", "replace")
            if len(self._terminations) < _MAX_NAMES:
                self._terminations[fields[4]] = termination
        return RequestLine(names[0], names[1], status, response_ms, active_ms, termination)

    def _decode_names(self, field: bytes) -> tuple[str, str] | None:
        backend, slash, server = field.partition(b"/")
        if not slash or not backend or not server:
            return None
        try:
            names = (backend.decode("ascii"), server.decode("ascii"))
        except UnicodeDecodeError:
            return None
        if len(self._names) >= _MAX_NAMES:
            self._names.clear()  # names come from a config: only garbage can fill this
        self._names[field] = names
        return names
