"""The demo's view of watchdogd: its HTTP API, read the way ``watchdogd status`` reads it.

A failed or refused call is "nothing to show yet" (``None`` or no events), never an exception:
the daemon is starting, or busy rolling back, and the next poll will tell.
"""

from __future__ import annotations

from typing import Any

import httpx


class DaemonApi:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self._client = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=5.0,
            trust_env=False,
        )

    async def _get(self, path: str) -> Any:
        try:
            response = await self._client.get(path)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    async def ready(self) -> bool:
        return await self._get("/readyz") is not None

    async def target(self, name: str) -> dict[str, Any] | None:
        data = await self._get(f"/api/v1/targets/{name}")
        return data if isinstance(data, dict) else None

    async def events_after(self, after_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """Audit events with an id above ``after_id``, oldest first (the API pages newest
        first, so this reads the newest ``limit`` and keeps the new ones)."""
        data = await self._get(f"/api/v1/events?limit={limit}")
        if not isinstance(data, dict):
            return []
        events = [e for e in data.get("events", []) if e["id"] > after_id]
        return sorted(events, key=lambda e: int(e["id"]))

    async def close(self) -> None:
        await self._client.aclose()
