"""``sql`` against a real PostgreSQL and ``redis_invalidate`` against a real Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from playbook_fakes import FakeDriver, RecordingSleep, plan, runner, step

from tests.support.services import PostgresServer, RedisServer
from watchdogd.playbook import StepResult
from watchdogd.store import StepStatus, Store

RunOne = Callable[..., Awaitable[StepResult]]


@pytest.fixture
def run_one(store: Store, driver: FakeDriver, sleep: RecordingSleep) -> RunOne:
    """Run a playbook of one step, given as keyword arguments; return its result."""

    async def run(**data: Any) -> StepResult:
        outcome = await runner(store, driver, sleep).run(plan([step(**data)]))
        return outcome.steps[0]

    return run


@pytest.mark.postgres
class TestSql:
    @pytest.fixture
    def dsn(self, postgres_server: PostgresServer) -> Iterator[str]:
        """The server's DSN, with a fresh, empty table ``downgrade (id integer)``."""
        with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS downgrade")
            conn.execute("CREATE TABLE downgrade (id integer)")
        yield postgres_server.dsn
        with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS downgrade")

    @staticmethod
    def rows(dsn: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn) as conn:
            return conn.execute("SELECT * FROM downgrade ORDER BY 1").fetchall()

    async def test_commits_the_whole_file(self, run_one: RunOne, dsn: str, tmp_path: Path) -> None:
        """Every statement of the file lands."""
        script = tmp_path / "down.sql"
        script.write_text(
            "INSERT INTO downgrade VALUES (1);\n"
            "INSERT INTO downgrade VALUES (2);\n"
            "UPDATE downgrade SET id = id * 10;\n"
        )
        result = await run_one(sql={"dsn": dsn, "file": str(script)})
        assert (result.status, result.detail) == (StepStatus.SUCCEEDED, "down.sql: committed")
        assert self.rows(dsn) == [(10,), (20,)]

    async def test_a_failing_statement_rolls_back_everything(
        self, run_one: RunOne, dsn: str, tmp_path: Path
    ) -> None:
        """A statement failing in the middle leaves no change at all, DDL included."""
        script = tmp_path / "down.sql"
        script.write_text(
            "ALTER TABLE downgrade ADD COLUMN note text;\n"
            "INSERT INTO downgrade VALUES (1, 'first');\n"
            "INSERT INTO downgrade VALUES ('not a number', 'second');\n"
            "INSERT INTO downgrade VALUES (3, 'third');\n"
        )
        result = await run_one(sql={"dsn": dsn, "file": str(script)})
        assert result.status is StepStatus.FAILED
        assert result.detail.startswith("down.sql: rolled back: invalid input syntax")
        assert result.detail.endswith("[22P02]")
        assert self.rows(dsn) == []
        with psycopg.connect(dsn) as conn:
            columns = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                ("downgrade",),
            ).fetchall()
        assert columns == [("id",)]

    async def test_transaction_control_is_refused_before_anything_runs(
        self, run_one: RunOne, dsn: str, tmp_path: Path
    ) -> None:
        """A COMMIT in the file would commit its first part while the journal says "rolled
        back": the file is refused, and nothing of it runs."""
        script = tmp_path / "down.sql"
        script.write_text(
            "INSERT INTO downgrade VALUES (1);\n"
            "commit;\n"
            "INSERT INTO downgrade VALUES ('not a number');\n"
        )
        result = await run_one(sql={"dsn": dsn, "file": str(script)})
        assert result.status is StepStatus.FAILED
        assert result.detail.startswith("down.sql: refused, nothing run: it contains commit")
        assert self.rows(dsn) == []

    async def test_the_words_in_strings_comments_and_bodies_are_no_statements(
        self, run_one: RunOne, dsn: str, tmp_path: Path
    ) -> None:
        """COMMIT or BEGIN inside a string, a comment, an identifier or a function body runs."""
        script = tmp_path / "down.sql"
        script.write_text(
            "-- BEGIN; this is only a comment\n"
            "/* COMMIT; */ INSERT INTO downgrade VALUES (length('x; COMMIT; y'));\n"
            'ALTER TABLE downgrade ADD COLUMN "commit" text;\n'
            "DO $$ BEGIN INSERT INTO downgrade (id) VALUES (2); END $$;\n"
        )
        result = await run_one(sql={"dsn": dsn, "file": str(script)})
        assert (result.status, result.detail) == (StepStatus.SUCCEEDED, "down.sql: committed")
        assert self.rows(dsn) == [(2, None), (12, None)]

    async def test_lock_timeout_is_honoured(
        self, run_one: RunOne, dsn: str, tmp_path: Path
    ) -> None:
        """A table locked by someone else fails the step by lock_timeout, not the step's."""
        script = tmp_path / "down.sql"
        script.write_text("INSERT INTO downgrade VALUES (1);\n")
        with psycopg.connect(dsn) as holder:
            holder.execute("LOCK TABLE downgrade IN ACCESS EXCLUSIVE MODE")
            result = await run_one(
                sql={"dsn": dsn, "file": str(script), "lock_timeout": "200ms"},
                timeout="60s",
            )
            holder.rollback()
        assert result.status is StepStatus.FAILED
        assert result.detail == (
            "down.sql: rolled back: canceling statement due to lock timeout [55P03]"
        )
        assert self.rows(dsn) == []

    async def test_statement_timeout_is_honoured(
        self, run_one: RunOne, dsn: str, tmp_path: Path
    ) -> None:
        """A statement running past statement_timeout is cancelled by the server."""
        script = tmp_path / "slow.sql"
        script.write_text("SELECT pg_sleep(30);\n")
        sql = {"dsn": dsn, "file": str(script), "statement_timeout": "100ms"}
        result = await run_one(sql=sql, timeout="60s")
        assert result.detail.endswith("due to statement timeout [57014]")

    async def test_missing_file(self, run_one: RunOne, tmp_path: Path) -> None:
        """A SQL file that cannot be read fails before connecting."""
        sql = {"dsn": "postgresql://nobody@127.0.0.1:1/x", "file": str(tmp_path / "none.sql")}
        result = await run_one(sql=sql)
        assert result.detail.startswith(f"cannot read {tmp_path / 'none.sql'}")


@pytest.mark.redis
class TestRedisInvalidate:
    @staticmethod
    def client(server: RedisServer, db: int) -> redis.Redis:
        return redis.Redis(host=server.host, port=server.port, db=db)

    @staticmethod
    def url(server: RedisServer, db: int) -> str:
        return f"redis://{server.host}:{server.port}/{db}"

    async def test_only_matching_keys_go(self, run_one: RunOne, redis_server: RedisServer) -> None:
        """SCAN + UNLINK in batches removes every matching key and nothing else."""
        with self.client(redis_server, 1) as client:
            client.flushdb()
            client.mset({f"cache:page:{n}": "x" for n in range(2500)})
            client.mset({f"session:{n}": "s" for n in range(10)})
            client.set("cachex", "not matched")
        spec = {"url": self.url(redis_server, 1), "pattern": "cache:*"}
        result = await run_one(redis_invalidate=spec)
        assert result.detail == "unlinked 2500 keys matching 'cache:*'"
        with self.client(redis_server, 1) as client:
            remaining = sorted(key.decode() for key in client.scan_iter(count=1000))
        assert remaining == ["cachex", *sorted(f"session:{n}" for n in range(10))]

    async def test_flush_empties_only_its_database(
        self, run_one: RunOne, redis_server: RedisServer
    ) -> None:
        """``flush: true`` empties the URL's database and leaves the others alone."""
        with self.client(redis_server, 2) as flushed, self.client(redis_server, 3) as other:
            flushed.flushdb()
            other.flushdb()
            flushed.mset({f"k{n}": n for n in range(7)})
            other.set("keep", "me")
        spec = {"url": self.url(redis_server, 2), "flush": True}
        result = await run_one(redis_invalidate=spec)
        assert result.detail == "flushed the database (7 keys)"
        with self.client(redis_server, 2) as flushed, self.client(redis_server, 3) as other:
            assert flushed.dbsize() == 0
            assert other.get("keep") == b"me"

    async def test_unreachable_server(self, run_one: RunOne) -> None:
        """A Redis that does not answer fails the step (after retries: it is idempotent)."""
        spec = {"url": "redis://127.0.0.1:1/0", "pattern": "cache:*"}
        result = await run_one(redis_invalidate=spec)
        assert result.status is StepStatus.FAILED
        assert result.attempts == 3
        assert result.detail.startswith("ConnectionError")
