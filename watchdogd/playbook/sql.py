"""``sql``: a SQL file against PostgreSQL, all or nothing.

One transaction with ``SET LOCAL lock_timeout`` and ``statement_timeout``: a statement that
fails, a lock that cannot be had in time, a timeout or a lost connection roll back every
statement of the file. The file may hold several statements (sent without parameters, so
psycopg uses the simple query protocol), but no transaction control (``BEGIN``, ``COMMIT``,
``SAVEPOINT``, …): such a file is refused before anything runs (``sql_statements``).
"""

from __future__ import annotations

import asyncio

import psycopg
from psycopg import sql

from watchdogd.config.steps import SqlAction, Step
from watchdogd.errors import StepFailed
from watchdogd.playbook.context import StepContext
from watchdogd.playbook.sql_statements import transaction_control

__all__ = ["run_sql"]


def _describe(err: psycopg.Error) -> str:
    diag = err.diag
    if diag.message_primary:
        code = f" [{diag.sqlstate}]" if diag.sqlstate else ""
        return f"{diag.message_primary}{code}"
    return str(err).strip() or type(err).__name__


async def run_sql(step: Step, ctx: StepContext) -> str:
    spec = step.spec
    assert isinstance(spec, SqlAction)  # noqa: S101 - guaranteed by the dispatch table
    try:
        script = await asyncio.to_thread(spec.file.read_bytes)
    except OSError as err:
        raise StepFailed("sql", f"cannot read {spec.file}: {err.strerror}") from err
    found = transaction_control(script.decode(errors="replace"))
    if found is not None:
        raise StepFailed(
            "sql",
            f"{spec.file.name}: refused, nothing run: it contains {found}, which would break "
            "the step's single transaction (remove it; the step commits or rolls back itself)",
        )
    set_local = sql.SQL("SET LOCAL {} = {}")
    try:
        async with (
            await psycopg.AsyncConnection.connect(
                spec.dsn, autocommit=True, application_name="watchdogd"
            ) as conn,
            conn.transaction(),
        ):
            for name, seconds in (
                ("lock_timeout", spec.lock_timeout),
                ("statement_timeout", spec.statement_timeout),
            ):
                milliseconds = sql.Literal(f"{max(1, round(seconds * 1000))}ms")
                await conn.execute(set_local.format(sql.Identifier(name), milliseconds))
            await conn.execute(script)
    except psycopg.Error as err:
        raise StepFailed("sql", f"{spec.file.name}: rolled back: {_describe(err)}") from err
    return f"{spec.file.name}: committed"
