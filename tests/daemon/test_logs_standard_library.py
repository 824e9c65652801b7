"""aiohttp's and asyncio's errors go through structlog: one JSON line each, with the
traceback as a field and secrets redacted, not a multi-line plain traceback (issue 11)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import HttpProcessingError, InvalidURLError

from tests.support.log_capture import json_logs


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    with json_logs(["s3cr3t-token"]) as stream:
        yield stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_an_aiohttp_error_is_one_json_line(output: io.StringIO) -> None:
    try:
        int("bad header s3cr3t-token")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    [line] = lines(output)
    assert line["event"] == "Error handling request"
    assert line["logger"] == "aiohttp.server"
    assert line["level"] == "error"
    assert "ValueError: invalid literal for int() with base 10: 'bad header ***'" in str(
        line["exception"]
    )
    assert "s3cr3t-token" not in output.getvalue()


def test_an_asyncio_error_is_one_json_line(output: io.StringIO) -> None:
    async def fail() -> None:
        loop = asyncio.get_running_loop()
        loop.call_exception_handler(
            {"message": "Task exception was never retrieved", "exception": OSError("boom")}
        )

    asyncio.run(fail())
    [line] = lines(output)
    assert line["logger"] == "asyncio"
    assert "OSError: boom" in str(line["exception"])


def test_library_info_lines_stay_out(output: io.StringIO) -> None:
    logging.getLogger("httpx").info("HTTP Request: GET http://app/ 200")
    assert output.getvalue() == ""


def test_a_clients_bad_request_is_not_an_error(output: io.StringIO) -> None:
    """aiohttp logs a malformed request with its traceback; it was answered 400, so it is a
    debug line at most: anyone could otherwise fill the log with tracebacks."""
    try:
        raise_bad_request()
    except HttpProcessingError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    assert output.getvalue() == ""


def raise_bad_request() -> None:
    raise InvalidURLError(message="Invalid char in url path")
