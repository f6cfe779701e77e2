"""Test-only gates: a statement trigger that makes UPDATEs of a table wait, after they have done
their work, while the test holds an advisory lock. Races are then played in a chosen order
(a claim in flight while a task is sent; a node finishing while its parent is cancelled)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from tests.conftest import database_url

MARKED_SESSIONS = "current_setting('horsies_test.gate', true) = 'on'"  # SET horsies_test.gate


@dataclass(frozen=True)
class Gate:
    conn: psycopg.Connection[tuple[object, ...]]
    key: int

    def close(self) -> None:
        """From now on, gated UPDATEs wait at their end."""
        self.conn.execute("SELECT pg_advisory_lock(%s)", (self.key,))

    def open(self) -> None:
        self.conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))


@contextmanager
def update_gate(table: str, key: int, *, marked_sessions_only: bool = False) -> Iterator[Gate]:
    """Gate every UPDATE statement of `table` (or only those of sessions that ran
    `SET horsies_test.gate = 'on'`) on advisory lock `key`; removed on exit."""
    name = f"test_gate_{table}"
    condition = MARKED_SESSIONS if marked_sessions_only else "true"
    install = f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {condition} THEN
        PERFORM pg_advisory_xact_lock_shared({key});
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER {name} AFTER UPDATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {name}();
"""
    remove = f"DROP TRIGGER IF EXISTS {name} ON {table}; DROP FUNCTION IF EXISTS {name}();"
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(remove)
        conn.execute(install)
        try:
            yield Gate(conn, key)
        finally:
            conn.execute("SELECT pg_advisory_unlock_all()")
            conn.execute(remove)
