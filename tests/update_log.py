"""A test-only statement trigger that logs every UPDATE of horsies_task, so tests see the hot
path's shape as the database saw it: per statement, its backend and transaction, how many rows
it took from PENDING to RUNNING (a claim), how many it finished or handed back, and whether
its backend held the cap lock (the advisory lock claimers serialise on when a cap applies).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from horsies_django.worker.claims import CAP_LOCK_KEY
from tests.conftest import database_url, sql_value, wait_until

INSTALL = """
CREATE TABLE test_update_log (
    seq bigserial, at timestamptz DEFAULT clock_timestamp(),
    pid int, xid bigint, claimed int, finished int, released int, cap_locks int
);
CREATE FUNCTION test_log_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_update_log (pid, xid, claimed, finished, released, cap_locks)
    SELECT pg_backend_pid(), txid_current(),
           count(*) FILTER (WHERE o.status = 'PENDING' AND n.status = 'RUNNING'),
           count(*) FILTER (WHERE o.status = 'RUNNING' AND n.status = 'COMPLETED'),
           count(*) FILTER (WHERE o.status = 'RUNNING' AND n.status = 'PENDING'),
           (SELECT count(*) FROM pg_locks
             WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
               AND objsubid = 1 AND classid::bigint * 4294967296 + objid::bigint = %(key)s)
    FROM old_rows o JOIN new_rows n USING (id);
    RETURN NULL;
END $$;
CREATE TRIGGER test_log_update AFTER UPDATE ON horsies_task
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION test_log_update();
"""
UNINSTALL = """
DROP TRIGGER IF EXISTS test_log_update ON horsies_task;
DROP FUNCTION IF EXISTS test_log_update();
DROP TABLE IF EXISTS test_update_log;
"""


@dataclass(frozen=True)
class Update:
    pid: int
    xid: int
    claimed: int
    finished: int
    released: int  # held tasks handed back (RUNNING -> PENDING) before they started
    cap_locks: int


def _run(sql: str) -> None:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def recording_updates() -> Iterator[None]:
    """Log every UPDATE of horsies_task while the block runs (read with `logged_updates`)."""
    _run(UNINSTALL)
    _run(INSTALL.replace("%(key)s", str(CAP_LOCK_KEY)))
    try:
        yield
    finally:
        _run(UNINSTALL)


def forget_updates() -> None:
    _run("TRUNCATE test_update_log")


def logged_updates() -> list[Update]:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, xid, claimed, finished, released, cap_locks FROM test_update_log "
            "ORDER BY seq"
        ).fetchall()
    return [Update(*row) for row in rows]


def wait_completed(total: int) -> None:
    wait_until(
        lambda: sql_value("SELECT count(*) FROM horsies_task WHERE status = 'COMPLETED'") == total,
        timeout_s=120,
        what=f"{total} tasks COMPLETED",
    )


def statements_per_backend_since(seconds_ago_at_least: float) -> dict[int, int] | None:
    """Statements per backend logged so far, once the log spans `seconds_ago_at_least` seconds
    (None before): a window measured by the database's clock, not by sleeping."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        span = conn.execute(
            "SELECT extract(epoch FROM max(at) - min(at)) FROM test_update_log"
        ).fetchone()
        if span is None or span[0] is None or float(span[0]) < seconds_ago_at_least:
            return None
        rows = conn.execute("SELECT pid, count(*) FROM test_update_log GROUP BY pid").fetchall()
    return {int(pid): int(n) for pid, n in rows}
