"""The command line's side of the control API: find the daemon, call it, print the answer.

The daemon's URL and token come from flags, then ``WATCHDOGD_URL``/``WATCHDOGD_TOKEN``, then the
config file (``--config``, default ``/etc/watchdogd/watchdogd.yaml`` when it exists).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdogd.errors import ClientError, ConfigError

DEFAULT_CONFIG = Path("/etc/watchdogd/watchdogd.yaml")


@dataclass(frozen=True)
class Endpoint:
    url: str
    token: str | None


def resolve_endpoint(url: str | None, token: str | None, config: str | None) -> Endpoint:
    url = url or os.environ.get("WATCHDOGD_URL")
    token = token or os.environ.get("WATCHDOGD_TOKEN")
    path = Path(config) if config else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    if path is not None and (url is None or token is None):
        from watchdogd.config.loader import load_config  # noqa: PLC0415 - pydantic: not for `run`

        try:
            loaded = load_config(path)
        except ConfigError as err:
            raise ClientError(str(err), 2) from err
        if url is None:
            host = loaded.listen_host
            host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - wildcard → loopback
            url = f"http://{host}:{loaded.listen_port}"
        if token is None:
            token = loaded.api_token or _read_token(loaded.api_token_file)
    return Endpoint(url=(url or "http://127.0.0.1:9797").rstrip("/"), token=token)


def _read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip() or None
    except OSError:
        return None  # the daemon will answer 401 and the user is told why


def call(endpoint: Endpoint, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    # Imported here: `watchdogd run` imports this module for ClientError, and httpx costs it
    # about 15 MB and 80 ms that a daemon never uses.
    import httpx  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {endpoint.token}"} if endpoint.token else {}
    try:
        response = httpx.request(
            method, endpoint.url + path, json=body, headers=headers, timeout=10.0
        )
    except httpx.HTTPError as err:
        raise ClientError(f"cannot reach watchdogd at {endpoint.url}: {err}", 3) from err
    try:
        data = response.json()
    except json.JSONDecodeError:
        data = {"error": response.text}
    if response.status_code == 401:
        hint = "" if endpoint.token else " (no token: use --token, WATCHDOGD_TOKEN or --config)"
        raise ClientError(f"watchdogd refused the token: {data.get('error')}{hint}", 4)
    if response.status_code >= 400:
        raise ClientError(
            f"watchdogd said {response.status_code}: {data.get('error', data)}",
            1,
            status=response.status_code,
        )
    return data
