"""``http``: call a URL and expect one of the given statuses."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from watchdogd.config.steps import HttpAction, Step
from watchdogd.errors import StepFailed
from watchdogd.playbook.context import StepContext, tail

__all__ = ["run_http", "safe_url"]


def safe_url(url: str) -> str:
    """The URL without credentials and query string, which may carry tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def run_http(step: Step, ctx: StepContext) -> str:
    spec = step.spec
    assert isinstance(spec, HttpAction)  # noqa: S101 - guaranteed by the dispatch table
    where = f"{spec.method} {safe_url(spec.url)}"
    try:
        async with ctx.http.request(
            spec.method, spec.url, headers=spec.headers, json=spec.json_body
        ) as response:
            body = await response.text(errors="replace")
    except aiohttp.ClientError as err:
        raise StepFailed("http", f"{where}: {type(err).__name__}: {err}") from err
    if response.status not in spec.expect_status:
        expected = ", ".join(str(s) for s in spec.expect_status)
        raise StepFailed(
            "http", f"{where} answered {response.status}, expected {expected}: {tail(body, 5)}"
        )
    return f"{where} answered {response.status}"
