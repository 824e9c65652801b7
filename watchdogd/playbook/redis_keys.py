"""``redis_invalidate``: delete keys by pattern (SCAN + UNLINK in batches) or flush a database.

SCAN never blocks the server the way KEYS does, and UNLINK frees memory in the background.
Keys written while the scan runs may survive; the step is idempotent, so a retry catches them.
"""

from __future__ import annotations

import redis.asyncio
from redis.exceptions import RedisError

from watchdogd.config.steps import RedisInvalidateAction, Step
from watchdogd.errors import StepFailed
from watchdogd.playbook.context import StepContext

__all__ = ["BATCH", "run_redis_invalidate"]

BATCH = 1000


async def run_redis_invalidate(step: Step, ctx: StepContext) -> str:
    spec = step.spec
    assert isinstance(spec, RedisInvalidateAction)  # noqa: S101 - guaranteed by the dispatch
    client = redis.asyncio.Redis.from_url(spec.url)
    try:
        if spec.flush:
            count = int(await client.dbsize())
            await client.flushdb()
            return f"flushed the database ({count} keys)"
        deleted = 0
        batch: list[bytes] = []
        async for key in client.scan_iter(match=spec.pattern, count=BATCH):
            batch.append(key)
            if len(batch) >= BATCH:
                deleted += int(await client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(await client.unlink(*batch))
    except RedisError as err:
        raise StepFailed("redis_invalidate", f"{type(err).__name__}: {err}") from err
    finally:
        await client.aclose()
    return f"unlinked {deleted} keys matching {spec.pattern!r}"
