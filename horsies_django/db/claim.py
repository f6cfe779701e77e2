"""The claim: the one statement that takes PENDING tasks and starts them, and its typed row.

Workers, `horsies_django.testing.run_pending` and eager mode all claim through
`claim_statement()`: the same eligibility, claim order, fencing generation and returned
columns, with a filter where they differ (a worker claims from its queues, the test helper
only some task names, eager mode one task by id). A claim is the start: PENDING -> RUNNING in
one write; `started_at` is corrected to the moment user code began when the outcome is
recorded. Eligibility is judged by `statement_timestamp()`, which in a worker's autocommit
session is the transaction's time and inside a test's open transaction is not frozen at its
start, so a task sent a moment ago in the same transaction is already due.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

import psycopg

from horsies_django.db.connections import Row

# A claim generation is a random token, not a counter: a claim undone by a server crash (claims
# may be committed asynchronously) can then never be confused with the next claim of the task.
NEW_GENERATION: Final = "1 + (random() * 9.0e18)::bigint"


class ClaimFrom(Enum):
    """Where a claim looks for tasks."""

    QUEUES = "queues"  # several queues, each with its rank and own limit (lateral per queue)
    ONE_QUEUE = "one_queue"  # one queue: no per-queue join, less than half the server's work
    ONE_TASK = "one_task"  # one task by id, due or not (eager mode runs delays at once)


def _eligible(t: str) -> str:
    return (
        f"{t}.status = 'PENDING' AND {t}.enqueued_at <= statement_timestamp()\n"
        f"          AND ({t}.good_until IS NULL OR {t}.good_until > statement_timestamp())"
    )


def _names(t: str, by_name: bool) -> str:
    return f"\n          AND {t}.task_name = ANY(%s::text[])" if by_name else ""


_START: Final = f"""
    UPDATE horsies_task t
    SET status = 'RUNNING', claimed_by = %s, claim_gen = {NEW_GENERATION},
        claimed_at = statement_timestamp(), started_at = statement_timestamp(),
        claim_expires_at = statement_timestamp() + make_interval(secs => %s)"""


def _columns(c: str) -> str:
    """The columns of a `Claimed`, in its field order."""
    return (
        f"{c}.id, {c}.task_name, {c}.kwargs::text, {c}.claim_gen, {c}.retry_count, "
        f"{c}.options::text,\n    extract(epoch FROM {c}.good_until)::float8, {c}.timeout_ms, "
        f"{c}.queue_name"
    )


def claim_statement(source: ClaimFrom, *, by_name: bool = False) -> str:
    """The claim from `source`, optionally only of some task names. Parameters, in order:

    - QUEUES: queue names, their ranks and per-queue limits (three arrays), [task names], the
      total limit, the worker id, the lease in seconds;
    - ONE_QUEUE: the worker id, the lease in seconds, the queue, [task names], the limit;
    - ONE_TASK: the worker id, the lease in seconds, the task id, [task names].

    Rows come back in claim order (queue rank, task priority, eligible time, id): an UPDATE's
    RETURNING has no order of its own, and the worker dispatches them in this order.
    """
    if source is ClaimFrom.QUEUES:
        return f"""
WITH q AS (
    SELECT * FROM unnest(%s::text[], %s::int[], %s::int[]) AS q(name, rank, lim)
),
picked AS (
    SELECT c.id
    FROM q CROSS JOIN LATERAL (
        SELECT t.id, t.priority, t.enqueued_at
        FROM horsies_task t
        WHERE {_eligible("t")} AND t.queue_name = q.name{_names("t", by_name)}
        ORDER BY t.priority, t.enqueued_at, t.id
        LIMIT q.lim
        FOR UPDATE SKIP LOCKED
    ) c
    ORDER BY q.rank, c.priority, c.enqueued_at, c.id
    LIMIT %s
),
claimed AS ({_START}
    FROM picked
    WHERE t.id = picked.id
    RETURNING t.*
)
SELECT {_columns("c")}
FROM claimed c JOIN q ON q.name = c.queue_name
ORDER BY q.rank, c.priority, c.enqueued_at, c.id
"""
    if source is ClaimFrom.ONE_QUEUE:
        where = f"{_eligible('c')} AND c.queue_name = %s{_names('c', by_name)}"
        limit = "LIMIT %s"
    else:
        where = f"c.id = %s AND c.status = 'PENDING'{_names('c', by_name)}"
        limit = "LIMIT 1"
    return f"""
WITH claimed AS ({_START}
    WHERE t.id IN (
        SELECT c.id FROM horsies_task c
        WHERE {where}
        ORDER BY c.priority, c.enqueued_at, c.id
        {limit}
        FOR UPDATE SKIP LOCKED
    )
    RETURNING t.*
)
SELECT {_columns("claimed")}
FROM claimed
ORDER BY priority, enqueued_at, id
"""


# The worker's claims, by the name they are prepared under.
CLAIM_STATEMENTS: Final[dict[str, str]] = {
    "horsies_claim": claim_statement(ClaimFrom.QUEUES),
    "horsies_claim_one_queue": claim_statement(ClaimFrom.ONE_QUEUE),
}


@dataclass(frozen=True, slots=True)
class Claimed:
    """A task this process now holds, with the generation that fences it."""

    task_id: str
    task_name: str
    kwargs_json: str
    claim_gen: int
    retry_count: int
    options_json: str
    good_until: datetime | None
    timeout_ms: int | None
    queue_name: str


def claimed_from_row(row: Sequence[Any]) -> Claimed:
    """A row of a claim, typed by psycopg or as text (from an `Outbox`)."""
    good_until = None if row[6] is None else datetime.fromtimestamp(float(row[6]), UTC)
    return Claimed(
        task_id=str(row[0]),
        task_name=row[1],
        kwargs_json=row[2],
        claim_gen=int(row[3]),
        retry_count=int(row[4]),
        options_json=row[5],
        good_until=good_until,
        timeout_ms=None if row[7] is None else int(row[7]),
        queue_name=row[8],
    )


@dataclass(frozen=True, slots=True)
class QueueSlot:
    """A queue to claim from: its rank in claim order and how many tasks it may give."""

    name: str
    rank: int
    limit: int


def claim_request(
    worker_id: uuid.UUID,
    slots: Sequence[QueueSlot],
    limit: int,
    lease_s: float,
    *,
    task_names: Sequence[str] | None = None,
) -> tuple[str, list[str]]:
    """The name of the claim statement that suits `slots` and its parameters, as text.

    With `task_names`, the statement is not one of `CLAIM_STATEMENTS`: look it up with
    `statement_for`."""
    names = [] if task_names is None else [text_array(task_names)]
    if len(slots) == 1:
        only = slots[0]
        params = [str(worker_id), str(lease_s), only.name, *names, str(min(limit, only.limit))]
        return "horsies_claim_one_queue", params
    return "horsies_claim", [
        text_array([s.name for s in slots]),
        text_array([str(s.rank) for s in slots]),
        text_array([str(s.limit) for s in slots]),
        *names,
        str(limit),
        str(worker_id),
        str(lease_s),
    ]


def statement_for(name: str, *, by_name: bool) -> str:
    """The text of the claim `name` (see `claim_request`), with or without the name filter."""
    if not by_name:
        return CLAIM_STATEMENTS[name]
    return _BY_NAME[name]


_BY_NAME: Final[dict[str, str]] = {
    "horsies_claim": claim_statement(ClaimFrom.QUEUES, by_name=True),
    "horsies_claim_one_queue": claim_statement(ClaimFrom.ONE_QUEUE, by_name=True),
}

CLAIM_ONE_TASK: Final = claim_statement(ClaimFrom.ONE_TASK)


def text_array(values: Sequence[str]) -> str:
    """A PostgreSQL array literal of `values`, each quoted."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


def claim(
    conn: psycopg.Connection[Row],
    *,
    worker_id: uuid.UUID,
    slots: Sequence[QueueSlot],
    limit: int,
    lease_s: float,
) -> list[Claimed]:
    """Claim up to `limit` tasks in one statement, at most `slot.limit` from each queue."""
    name, params = claim_request(worker_id, slots, limit, lease_s)
    rows = conn.execute(CLAIM_STATEMENTS[name], params).fetchall()
    return [claimed_from_row(r) for r in rows]
