"""Free TCP ports on the loopback interface."""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port", "wait_port"]

# Ports the kernel hands to outgoing connections and to `bind(0)` (Docker's engine-chosen
# published ports too). A listener's port picked from there can be taken by any of those
# between the pick and the server's own bind: CI once lost a daemon that way.
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 20000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now, below the kernel's ephemeral range.

    Nothing the kernel picks by itself lands there, so only another test's explicit bind
    could take it before the caller binds it; ports already handed out by this process are
    not handed out again.
    """
    highest = _ephemeral_start() - 1
    for _ in range(200):
        port = random.randint(_LOWEST, highest)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {_LOWEST} and {highest} on {host}")


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
