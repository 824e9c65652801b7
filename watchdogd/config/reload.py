"""What a reload (SIGHUP) may change. Everything else takes effect at once.

Need a restart, so a reload that changes one is refused and names it (the old config keeps
running):

* ``listen``: the socket is bound once, before anything else starts;
* ``state_dir``: the daemon holds its lock and its store open;
* every ``server`` key but ``shutdown_timeout`` (``max_body``, ``header_timeout``,
  ``body_timeout``, ``max_connections``, ``hosts``): the HTTP server is built with them once;
* ``docker.host``, ``docker.timeout``: every driver and the event watcher hold one client.

Take effect on reload: ``api_token`` / ``api_token_file`` (the old token is refused from then
on), ``log``, ``notify`` (the next playbook and notification use the new notifiers),
``defaults``, ``targets`` (unchanged checks keep their windows), ``docker.poll_interval`` and
``server.shutdown_timeout``.
"""

from __future__ import annotations

from watchdogd.config.base import config_keys
from watchdogd.config.schema import Config, ServerSettings

__all__ = ["RESTART_ONLY", "restart_only_changes"]

RESTART_ONLY = (
    "listen",
    "state_dir",
    *(f"server.{key}" for key in config_keys(ServerSettings) if key != "shutdown_timeout"),
    "docker.host",
    "docker.timeout",
)


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """The keys of ``RESTART_ONLY`` whose value differs between ``old`` and ``new``."""
    return [key for key in RESTART_ONLY if _value(old, key) != _value(new, key)]


def _value(config: Config, key: str) -> object:
    value: object = config
    for part in key.split("."):
        value = getattr(value, part)
    return value
