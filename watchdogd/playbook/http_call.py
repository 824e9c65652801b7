"""``http``: call a URL and expect one of the given statuses."""

from __future__ import annotations

import aiohttp

from watchdogd.config.steps import HttpAction, Step
from watchdogd.errors import StepFailed
from watchdogd.playbook.context import StepContext, tail
from watchdogd.redact import describe_error, redact, safe_url, url_secrets

__all__ = ["run_http"]


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
        # Never the exception's text: aiohttp quotes the whole URL, query string and all.
        raise StepFailed("http", f"{where}: {describe_error(err)}") from err
    if response.status not in spec.expect_status:
        expected = ", ".join(str(s) for s in spec.expect_status)
        said = redact(tail(body, 5), url_secrets(spec.url))
        raise StepFailed("http", f"{where} answered {response.status}, expected {expected}: {said}")
    return f"{where} answered {response.status}"
