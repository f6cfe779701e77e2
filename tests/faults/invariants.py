"""The crash-safety invariants every fault test ends with, checked in SQL.

After any fault, once the queue has drained: no task is left CLAIMED/RUNNING, attempts of a
task are numbered 1..n and never overlap in time, a COMPLETED task has exactly one COMPLETED
attempt (its last), and the task row agrees with its last attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.conftest import database_url

# Each check returns offending rows; an empty result means the invariant holds.
CHECKS: dict[str, str] = {
    "task left in flight (CLAIMED/RUNNING)": """
        SELECT id, task_name, status FROM horsies_task
        WHERE status NOT IN ('PENDING', 'COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED')
    """,
    "attempts not numbered 1..n without gaps": """
        SELECT task_id, array_agg(attempt ORDER BY attempt) FROM horsies_task_attempt
        GROUP BY task_id HAVING min(attempt) <> 1 OR max(attempt) <> count(*)
    """,
    "COMPLETED task without exactly one COMPLETED attempt": """
        SELECT t.id, count(a.id) FILTER (WHERE a.outcome = 'COMPLETED') FROM horsies_task t
        LEFT JOIN horsies_task_attempt a ON a.task_id = t.id
        WHERE t.status = 'COMPLETED' GROUP BY t.id
        HAVING count(a.id) FILTER (WHERE a.outcome = 'COMPLETED') <> 1
    """,
    "COMPLETED attempt on a task that is not COMPLETED": """
        SELECT t.id, t.status FROM horsies_task t JOIN horsies_task_attempt a ON a.task_id = t.id
        WHERE a.outcome = 'COMPLETED' AND t.status <> 'COMPLETED'
    """,
    "two executions of one task overlap in time": """
        SELECT a.task_id, a.attempt, b.attempt FROM horsies_task_attempt a
        JOIN horsies_task_attempt b ON b.task_id = a.task_id AND b.attempt > a.attempt
        WHERE tstzrange(coalesce(a.started_at, a.finished_at), a.finished_at, '[)')
           && tstzrange(coalesce(b.started_at, b.finished_at), b.finished_at, '[)')
    """,
    "an attempt before the last one did not schedule a retry": """
        SELECT a.task_id, a.attempt FROM horsies_task_attempt a
        WHERE NOT a.will_retry AND EXISTS (
            SELECT 1 FROM horsies_task_attempt b
            WHERE b.task_id = a.task_id AND b.attempt > a.attempt)
    """,
    "task row disagrees with its last attempt": """
        SELECT t.id, t.status, t.retry_count, last.outcome, last.will_retry, n.retries
        FROM horsies_task t
        JOIN LATERAL (SELECT * FROM horsies_task_attempt a WHERE a.task_id = t.id
                      ORDER BY a.attempt DESC LIMIT 1) last ON true
        JOIN LATERAL (SELECT count(*) FILTER (WHERE a.will_retry) AS retries
                      FROM horsies_task_attempt a WHERE a.task_id = t.id) n ON true
        WHERE t.retry_count <> n.retries
           OR (t.status IN ('COMPLETED', 'FAILED') AND last.will_retry)
           OR (t.status = 'PENDING' AND NOT last.will_retry)
           OR (t.status = 'FAILED' AND t.error_code IS DISTINCT FROM last.error_code)
    """,
    "a finished task without any attempt": """
        SELECT t.id, t.status FROM horsies_task t
        WHERE t.status IN ('COMPLETED', 'FAILED')
          AND NOT EXISTS (SELECT 1 FROM horsies_task_attempt a WHERE a.task_id = t.id)
    """,
}


def violations(url: str | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every broken invariant with (up to 5 of) its offending rows."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(url or database_url(), autocommit=True) as conn:
        for name, query in CHECKS.items():
            rows = conn.execute(query).fetchall()
            if rows:
                found[name] = list(rows[:5])
    return found


def assert_invariants(url: str | None = None) -> None:
    """Fail with every broken invariant and sample rows."""
    broken = violations(url)
    assert not broken, "crash-safety invariants broken:\n" + "\n".join(
        f"- {name}: {rows}" for name, rows in broken.items()
    )


def status_counts(url: str | None = None) -> dict[str, int]:
    """{status: number of tasks}."""
    with psycopg.connect(url or database_url(), autocommit=True) as conn:
        rows = conn.execute("SELECT status, count(*) FROM horsies_task GROUP BY status").fetchall()
    return {str(status): int(count) for status, count in rows}


def completed_at_least(count: int, url: str | None = None) -> Callable[[], bool]:
    """A condition for `wait_until`: at least `count` tasks are COMPLETED."""
    return lambda: status_counts(url).get("COMPLETED", 0) >= count


def all_settled(url: str | None = None) -> bool:
    """True when no task is PENDING, CLAIMED or RUNNING."""
    counts = status_counts(url)
    return not any(counts.get(s) for s in ("PENDING", "CLAIMED", "RUNNING"))


def wait_settled(url: str | None = None, timeout_s: float = 120.0) -> None:
    """Wait until nothing is PENDING/CLAIMED/RUNNING; on timeout, fail showing what is stuck."""
    deadline = time.monotonic() + timeout_s
    while not all_settled(url):
        if time.monotonic() > deadline:
            with psycopg.connect(url or database_url(), autocommit=True) as conn:
                stuck = conn.execute(
                    "SELECT t.id, t.status, t.claimed_by, t.claim_gen, "
                    "t.claim_expires_at - now() AS lease_left, w.state, "
                    "(SELECT count(*) FROM horsies_task_attempt a WHERE a.task_id = t.id) "
                    "FROM horsies_task t LEFT JOIN horsies_worker w ON w.id = t.claimed_by "
                    "WHERE t.status IN ('PENDING', 'CLAIMED', 'RUNNING') LIMIT 10"
                ).fetchall()
            pytest.fail(f"tasks still unsettled after {timeout_s}s: {status_counts(url)}: {stuck}")
        time.sleep(0.05)  # polling interval of a bounded wait
