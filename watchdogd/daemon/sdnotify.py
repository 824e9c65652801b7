"""The systemd notify protocol: one datagram per message to ``$NOTIFY_SOCKET``.

Hand-written on purpose: it is one ``sendto`` call, and the packages that wrap it lack abstract
socket support or typing. A leading ``@`` names an abstract socket (a NUL byte on the wire).
Without ``$NOTIFY_SOCKET`` (not under systemd) every call is a no-op.
"""

from __future__ import annotations

import os
import socket

import structlog

log = structlog.get_logger(__name__)


class SystemdNotifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # systemd only wants keep-alives from the process it started (WATCHDOG_PID).
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and mine else None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=…"``) as one message; True when delivered."""
        if not self._address:
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._address)
        except OSError as err:
            if not self._failed:  # once, not on every keep-alive
                log.warning("sd_notify_failed", socket=self._address, error=str(err))
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")
