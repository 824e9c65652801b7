"""Finding transaction control in a ``sql`` step's script, which would break its all-or-nothing.

The step runs the whole file in one transaction. A ``COMMIT`` in the file would commit what came
before it while the journal says "rolled back"; a ``BEGIN``, ``SAVEPOINT`` or ``ROLLBACK`` would
change what a failure undoes. So such a file is refused before anything runs.

The script is split and tokenized by sqlparse, so a keyword inside a string (``'…; COMMIT'``),
a quoted identifier (``"commit"``), a comment or a dollar-quoted function body (``$$ … $$``)
is not a statement. Only the first word of each statement counts.
"""

from __future__ import annotations

import sqlparse
from sqlparse import tokens

__all__ = ["TRANSACTION_CONTROL", "transaction_control"]

#: Statements that begin, end or split a transaction (PostgreSQL's ``TransactionStmt``).
TRANSACTION_CONTROL = frozenset(
    {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE"}
)


def transaction_control(script: str) -> str | None:
    """The first transaction control statement of ``script`` as written (``COMMIT``,
    ``PREPARE TRANSACTION``), or None when there is none."""
    for statement in sqlparse.parse(script):
        words = [
            token.value
            for token in statement.flatten()  # type: ignore[no-untyped-call]
            if not token.is_whitespace
            and token.ttype not in tokens.Comment
            and token.ttype not in tokens.Punctuation
        ][:2]
        if not words:
            continue
        first = words[0].upper()
        second = words[1].upper() if len(words) > 1 else ""
        if first in TRANSACTION_CONTROL:
            return " ".join(words[:1])
        if first == "PREPARE" and second == "TRANSACTION":  # two-phase commit, not PREPARE name
            return " ".join(words)
    return None
