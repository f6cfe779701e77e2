"""The statements of the worker parent: caps, due times, outcomes, hand-backs, its own row.

They run on the worker's autocommit psycopg connections (the claim itself is in `claim.py`).
Every transition is fenced: it names the status, and the claim generation, it expects; a row
that moved on is skipped, so applying a statement twice changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg

from horsies_django.db.connections import Row

# --------------------------------------------------------------------------- claim limits

# Seconds until the earliest PENDING task of these queues becomes eligible (None if none).
NEXT_DUE: Final = """
SELECT EXTRACT(EPOCH FROM (min(enqueued_at) - now()))::float8
FROM horsies_task
WHERE status = 'PENDING' AND queue_name = ANY(%s::text[]) AND enqueued_at > now()
"""


# CLAIMED/RUNNING tasks per queue, across the cluster (for concurrency caps).
ACTIVE_PER_QUEUE: Final = """
SELECT queue_name, count(*) FROM horsies_task
WHERE status IN ('CLAIMED', 'RUNNING') AND queue_name = ANY(%s::text[])
GROUP BY queue_name
"""


ACTIVE_TOTAL: Final = "SELECT count(*) FROM horsies_task WHERE status IN ('CLAIMED', 'RUNNING')"


# Serialises claimers of capped queues for the length of the claim transaction.
LOCK_CAPS: Final = "SELECT pg_advisory_xact_lock(%s)"


def lock_caps(conn: psycopg.Connection[Row], key: int) -> None:
    """Serialise capped claims until the surrounding transaction ends."""
    conn.execute(LOCK_CAPS, (key,))


def active_counts(conn: psycopg.Connection[Row], queues: Sequence[str]) -> dict[str, int]:
    return dict(conn.execute(ACTIVE_PER_QUEUE, (list(queues),)).fetchall())


def active_total(conn: psycopg.Connection[Row]) -> int:
    row = conn.execute(ACTIVE_TOTAL).fetchone()
    return int(row[0]) if row else 0


def next_due_seconds(conn: psycopg.Connection[Row], queues: Sequence[str]) -> float | None:
    row = conn.execute(NEXT_DUE, (list(queues),)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


# --------------------------------------------------------------------------- outcomes

# Record a batch of outcomes, given as one JSON array of objects (cheap to build and to send):
# transition each still-fenced row and append its attempt (none for EXPIRED: the task never
# started). A row whose status or generation moved on is skipped, so applying a batch twice is a
# no-op. Returns the ids recorded. Times are epoch seconds.
FINISH: Final = """
WITH d AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS d(
        id uuid, gen bigint, new_status text, outcome text, result text, error_code text,
        failed_reason text, error_message text, will_retry boolean, traceback text,
        started_at double precision, finished_at double precision,
        retry_delay_s double precision, pid int, worker_id uuid)
),
done AS (
    UPDATE horsies_task t
    SET status = d.new_status,
        result = CASE WHEN d.new_status IN ('COMPLETED', 'FAILED') THEN d.result::jsonb END,
        error_code = CASE WHEN d.new_status IN ('FAILED', 'EXPIRED') THEN d.error_code END,
        failed_reason = CASE WHEN d.new_status IN ('FAILED', 'EXPIRED') THEN d.failed_reason END,
        started_at = CASE WHEN d.new_status <> 'EXPIRED'
            THEN coalesce(to_timestamp(d.started_at), t.started_at) END,
        finished_at = CASE WHEN d.will_retry THEN NULL ELSE to_timestamp(d.finished_at) END,
        retry_count = t.retry_count + d.will_retry::int,
        next_retry_at = CASE WHEN d.will_retry
            THEN now() + make_interval(secs => d.retry_delay_s) END,
        enqueued_at = CASE WHEN d.will_retry
            THEN now() + make_interval(secs => d.retry_delay_s) ELSE t.enqueued_at END,
        claimed_by = CASE WHEN d.will_retry THEN NULL ELSE t.claimed_by END,
        claim_expires_at = NULL
    FROM d
    WHERE t.id = d.id AND t.claim_gen = d.gen AND t.status IN ('CLAIMED', 'RUNNING')
    RETURNING t.id, t.retry_count - d.will_retry::int AS prior_retries
),
attempts AS (
    INSERT INTO horsies_task_attempt (
        task_id, attempt, outcome, will_retry, error_code, error_message, traceback, worker_id,
        pid, started_at, finished_at)
    SELECT d.id, done.prior_retries + 1, d.outcome, d.will_retry, d.error_code,
        d.error_message, d.traceback, d.worker_id, d.pid, to_timestamp(d.started_at),
        to_timestamp(d.finished_at)
    FROM done JOIN d ON d.id = done.id
    WHERE d.new_status <> 'EXPIRED'
)
SELECT id FROM done
"""


# Put tasks whose user code never started back to PENDING, fenced by generation; the claims
# are a JSON array of {id, gen} objects.
RELEASE_CLAIMS: Final = """
UPDATE horsies_task t
SET status = 'PENDING', claimed_by = NULL, claim_expires_at = NULL, started_at = NULL
FROM jsonb_to_recordset(%s::jsonb) AS d(id uuid, gen bigint)
WHERE t.id = d.id AND t.claim_gen = d.gen AND t.status IN ('CLAIMED', 'RUNNING')
RETURNING t.id
"""


@dataclass(frozen=True, slots=True)
class Finish:
    """One outcome to record: the transition and its attempt row."""

    task_id: str
    claim_gen: int
    new_status: str
    outcome: str
    result_json: str | None
    error_code: str | None
    failed_reason: str | None
    error_message: str | None
    will_retry: bool
    traceback: str | None
    started_at: datetime | None
    finished_at: datetime
    retry_delay_s: float | None
    pid: int | None
    worker_id: uuid.UUID | None = None


def finish(conn: psycopg.Connection[Row], outcomes: Sequence[Finish]) -> set[str]:
    """Record outcomes in one statement; returns the ids actually recorded (others were fenced)."""
    rows = conn.execute(FINISH, (finish_payload(outcomes),)).fetchall()
    return {str(r[0]) for r in rows}


def warm_up_finish(conn: psycopg.Connection[Row]) -> None:
    """Run `FINISH` once with nothing to record, in a transaction rolled back: the session loads
    the tables, plans and trigger functions it touches before the first outcome needs them (a
    session's first `FINISH` otherwise takes several milliseconds longer)."""
    with conn.transaction(force_rollback=True):
        conn.execute(FINISH, ("[]",))


def finish_payload(outcomes: Sequence[Finish]) -> str:
    """The JSON parameter of `FINISH`."""
    return json.dumps([_finish_row(f) for f in outcomes])


def _finish_row(f: Finish) -> dict[str, Any]:
    return {
        "id": f.task_id,
        "gen": f.claim_gen,
        "new_status": f.new_status,
        "outcome": f.outcome,
        "result": f.result_json,
        "error_code": f.error_code,
        "failed_reason": f.failed_reason,
        "error_message": f.error_message,
        "will_retry": f.will_retry,
        "traceback": f.traceback,
        "started_at": None if f.started_at is None else f.started_at.timestamp(),
        "finished_at": f.finished_at.timestamp(),
        "retry_delay_s": f.retry_delay_s,
        "pid": f.pid,
        "worker_id": None if f.worker_id is None else str(f.worker_id),
    }


def recorded_ids(rows: Sequence[Sequence[Any]]) -> set[str]:
    """The task ids in the rows of `FINISH` or `RELEASE_CLAIMS` (typed, or text from an Outbox)."""
    return {str(task_id) for (task_id,) in rows}


def claims_payload(claims: Sequence[tuple[str, int]]) -> str:
    """The JSON parameter of `RELEASE_CLAIMS`."""
    return json.dumps([{"id": task_id, "gen": gen} for task_id, gen in claims])


# ------------------------------------------------------------- the worker's row and sessions

# The worker's claim connection commits claims, heartbeats and maintenance without waiting for
# the WAL flush: each is visible at once to other sessions (so a cancel cannot race a claim),
# and a server crash that undoes one leaves nothing that the rescuer cannot recover.
# Outcomes are written on the completer's connection, durably.
ASYNC_SESSION: Final = "SELECT set_config('synchronous_commit', 'off', false)"


REGISTER_WORKER: Final = """
INSERT INTO horsies_worker (id, name, hostname, pid, processes, queues, state, started_at,
    heartbeat_at)
VALUES (%s, %s, %s, %s, %s, %s::jsonb, 'RUNNING', now(), now())
"""


# Renew this worker's heartbeat and the leases of the tasks it holds in memory, in one
# statement. A claim it does not know of (a lost reply) is not renewed, so it expires and the
# rescuer hands it back.
HEARTBEAT: Final = """
WITH renewed AS (
    UPDATE horsies_task SET claim_expires_at = now() + make_interval(secs => %(lease_s)s)
    WHERE claimed_by = %(worker_id)s AND status IN ('CLAIMED', 'RUNNING')
      AND id = ANY(%(held)s::uuid[])
    RETURNING 1
)
UPDATE horsies_worker SET heartbeat_at = now(), state = %(state)s
WHERE id = %(worker_id)s
RETURNING (SELECT count(*) FROM renewed)
"""


# What the database says this worker holds (to reconcile after a lost connection).
HELD_TASKS: Final = """
SELECT id, claim_gen FROM horsies_task
WHERE claimed_by = %s AND status IN ('CLAIMED', 'RUNNING')
"""


# A worker connection idle this long is dead or frozen: end it, releasing its advisory locks.
# Both idle states count: a worker frozen between two statements of a transaction (the
# rescuer's) leaves its session "idle in transaction", which idle_session_timeout ignores.
IDLE_SESSION_TIMEOUT: Final = """
SELECT set_config('idle_session_timeout', %s, false),
    set_config('idle_in_transaction_session_timeout', %s, false)
"""


STOP_WORKER: Final = """
UPDATE horsies_worker SET state = 'STOPPED', stopped_at = now(), heartbeat_at = now(),
    stop_reason = %s
WHERE id = %s
"""


def register_worker(
    conn: psycopg.Connection[Row],
    *,
    worker_id: uuid.UUID,
    name: str,
    hostname: str,
    pid: int,
    processes: int,
    queues: Sequence[str],
) -> None:
    conn.execute(
        REGISTER_WORKER,
        (worker_id, name, hostname, pid, processes, json.dumps(list(queues))),
    )


def heartbeat(
    conn: psycopg.Connection[Row],
    worker_id: uuid.UUID,
    *,
    held: Sequence[str],
    lease_s: float,
    state: str,
) -> int:
    """Renew the worker row and the leases of `held` tasks; returns how many were renewed."""
    params = {"worker_id": worker_id, "held": list(held), "lease_s": lease_s, "state": state}
    row = conn.execute(HEARTBEAT, params).fetchone()
    return int(row[0]) if row else 0


def held_generations(conn: psycopg.Connection[Row], worker_id: uuid.UUID) -> dict[str, int]:
    """Task id -> claim generation of every CLAIMED/RUNNING task claimed by this worker."""
    rows = conn.execute(HELD_TASKS, (worker_id,)).fetchall()
    return {str(task_id): int(gen) for task_id, gen in rows}


def set_idle_session_timeout(conn: psycopg.Connection[Row], timeout_ms: int) -> None:
    conn.execute(IDLE_SESSION_TIMEOUT, (f"{timeout_ms}ms", f"{timeout_ms}ms"))


def commit_asynchronously(conn: psycopg.Connection[Row]) -> None:
    """This session's commits return before their WAL is flushed (see ASYNC_SESSION)."""
    conn.execute(ASYNC_SESSION)


def stop_worker(
    conn: psycopg.Connection[Row], worker_id: uuid.UUID, reason: str | None = None
) -> None:
    conn.execute(STOP_WORKER, (reason, worker_id))
