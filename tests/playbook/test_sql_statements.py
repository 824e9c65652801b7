"""Which statements of a ``sql`` step's file are transaction control (pure tokenizing)."""

from __future__ import annotations

import pytest

from watchdogd.playbook.sql_statements import transaction_control


class TestTransactionControl:
    @pytest.mark.parametrize(
        ("script", "found"),
        [
            ("BEGIN; UPDATE t SET a = 1;", "BEGIN"),
            ("update t set a = 1;\n  commit;", "commit"),
            ("UPDATE t SET a = 1; COMMIT WORK", "COMMIT"),
            ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE;", "START"),
            ("SAVEPOINT s1; UPDATE t SET a = 1; RELEASE SAVEPOINT s1;", "SAVEPOINT"),
            ("UPDATE t SET a = 1; ROLLBACK TO SAVEPOINT s1;", "ROLLBACK"),
            ("END;", "END"),
            ("abort", "abort"),
            ("PREPARE TRANSACTION 'x';", "PREPARE TRANSACTION"),
            ("/* a comment */ -- another\nCOMMIT;", "COMMIT"),
        ],
    )
    def test_finds_the_statement(self, script: str, found: str) -> None:
        """Each statement that begins, ends or splits a transaction is named as written."""
        assert transaction_control(script) == found

    @pytest.mark.parametrize(
        "script",
        [
            "UPDATE t SET note = 'then COMMIT; and BEGIN';",
            "-- COMMIT;\nUPDATE t SET a = 1;",
            "/* ROLLBACK; */ UPDATE t SET a = 1;",
            'ALTER TABLE t ADD COLUMN "commit" text;',
            "DO $$ BEGIN UPDATE t SET a = 1; END $$;",
            "CREATE FUNCTION f() RETURNS int AS $b$ BEGIN RETURN 1; END $b$ LANGUAGE plpgsql;",
            "PREPARE q AS SELECT 1; EXECUTE q;",
            "SET LOCAL lock_timeout = '1s';",
            "",
        ],
    )
    def test_words_that_are_not_statements_pass(self, script: str) -> None:
        """Strings, comments, identifiers and function bodies hide nothing."""
        assert transaction_control(script) is None
