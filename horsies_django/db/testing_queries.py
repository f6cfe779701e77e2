"""SQL of the in-process runners (`horsies_django.testing`, eager mode).

They run on the caller's Django connection, often inside a test's open transaction, where
`now()` is frozen at the transaction's start: eligibility is judged by `statement_timestamp()`
so a task sent a moment ago in the same transaction is already due.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Final

import psycopg
from django.db import connections

from horsies_django.db.store import Claimed, Row

_CLAIMED_COLUMNS: Final = """
t.id, t.task_name, t.kwargs::text, t.claim_gen, t.retry_count, t.options::text,
    t.good_until, t.timeout_ms, t.queue_name
"""

_TAKE: Final = """
UPDATE horsies_task t
SET status = 'CLAIMED', claimed_by = %(worker_id)s, claim_gen = t.claim_gen + 1,
    claimed_at = statement_timestamp(),
    claim_expires_at = statement_timestamp() + make_interval(secs => %(lease_s)s)
FROM picked
WHERE t.id = picked.id AND t.status = 'PENDING'
"""

# Claim the next eligible task in claim order (queue rank, priority, eligible time, id),
# optionally only among some task names.
CLAIM_NEXT: Final = f"""
WITH q AS (
    SELECT * FROM unnest(%(queues)s::text[], %(ranks)s::int[]) AS q(name, rank)
),
picked AS (
    SELECT t.id FROM horsies_task t JOIN q ON q.name = t.queue_name
    WHERE t.status = 'PENDING' AND t.enqueued_at <= statement_timestamp()
      AND (t.good_until IS NULL OR t.good_until > statement_timestamp())
      AND (%(any_name)s OR t.task_name = ANY(%(names)s::text[]))
    ORDER BY q.rank, t.priority, t.enqueued_at, t.id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
)
{_TAKE}
RETURNING {_CLAIMED_COLUMNS}
"""

# Claim one PENDING task by id, whatever its eligible time (eager mode runs delays and
# retries at once).
CLAIM_BY_ID: Final = f"""
WITH picked AS (
    SELECT id FROM horsies_task WHERE id = %(task_id)s AND status = 'PENDING' FOR UPDATE
)
{_TAKE}
RETURNING {_CLAIMED_COLUMNS}
"""


def _claimed(row: Sequence[Any] | None) -> Claimed | None:
    if row is None:
        return None
    return Claimed(str(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8])


def claim_next(
    alias: str,
    *,
    queues: Sequence[tuple[str, int]],
    task_names: Sequence[str] | None,
    worker_id: uuid.UUID,
    lease_s: float,
) -> Claimed | None:
    """Claim the next due task of these (queue, rank) pairs, or None when none is due."""
    params: dict[str, Any] = {
        "queues": [name for name, _ in queues],
        "ranks": [rank for _, rank in queues],
        "any_name": task_names is None,
        "names": list(task_names or ()),
        "worker_id": worker_id,
        "lease_s": lease_s,
    }
    with connections[alias].cursor() as cur:
        cur.execute(CLAIM_NEXT, params)
        return _claimed(cur.fetchone())


def claim_by_id(
    alias: str, task_id: str, *, worker_id: uuid.UUID, lease_s: float
) -> Claimed | None:
    """Claim this task if it is PENDING (due or not), else None."""
    params: dict[str, Any] = {"task_id": task_id, "worker_id": worker_id, "lease_s": lease_s}
    with connections[alias].cursor() as cur:
        cur.execute(CLAIM_BY_ID, params)
        return _claimed(cur.fetchone())


def raw_connection(alias: str) -> psycopg.Connection[Row]:
    """The psycopg connection under Django's (same session, same open transaction)."""
    wrapper = connections[alias]
    wrapper.ensure_connection()
    conn: psycopg.Connection[Row] = wrapper.connection
    return conn


def transaction_failed(alias: str) -> bool:
    """True when the open transaction is aborted (a statement failed inside it)."""
    wrapper = connections[alias]
    if wrapper.connection is None:
        return False
    status = wrapper.connection.info.transaction_status
    return bool(status == psycopg.pq.TransactionStatus.INERROR)
