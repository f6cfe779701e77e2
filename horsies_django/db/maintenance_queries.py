"""SQL of maintenance: the commands `horsies_status` (read-only) and `horsies_prune`, and the
services of the maintenance leader (leadership, rescuing orphans, expiring).

Pruning deletes only terminal rows, in batches that are each one transaction; the attempt rows
of a batch go in the same statement as their tasks (the foreign key has no ON DELETE CASCADE
in the database: Django's CASCADE is emulated in Python, and this path bypasses the ORM).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg
from django.db import connections, transaction

from horsies_django.db.claim import Claimed, claimed_from_row
from horsies_django.db.connections import Row
from horsies_django.states import TASK_TERMINAL_STATES

# --------------------------------------------------------------------------- status

# Per queue: depth, scheduled (not yet eligible), active, failed in the last hour, and the
# age of the oldest task that is eligible but unclaimed.
QUEUE_STATS: Final = """
SELECT queue_name,
    count(*) FILTER (WHERE status = 'PENDING') AS pending,
    count(*) FILTER (WHERE status = 'PENDING' AND enqueued_at > now()) AS scheduled,
    count(*) FILTER (WHERE status IN ('CLAIMED', 'RUNNING')) AS running,
    count(*) FILTER (WHERE status = 'FAILED' AND finished_at >= now() - interval '1 hour')
        AS failed_last_hour,
    EXTRACT(EPOCH FROM now() - min(enqueued_at)
        FILTER (WHERE status = 'PENDING' AND enqueued_at <= now()))::float8 AS oldest_pending_s
FROM horsies_task
WHERE status IN ('PENDING', 'CLAIMED', 'RUNNING')
   OR (status = 'FAILED' AND finished_at >= now() - interval '1 hour')
GROUP BY queue_name
ORDER BY queue_name
"""

# Workers that are (or claim to be) running, and those that stopped or died recently.
WORKERS: Final = """
SELECT w.id, w.name, w.hostname, w.pid, w.processes, w.queues::text, w.state, w.started_at,
    w.heartbeat_at, w.stopped_at, w.stop_reason,
    EXTRACT(EPOCH FROM now() - w.heartbeat_at)::float8 AS silent_s,
    (SELECT count(*) FROM horsies_task t
     WHERE t.claimed_by = w.id AND t.status IN ('CLAIMED', 'RUNNING')) AS holding
FROM horsies_worker w
WHERE w.state IN ('RUNNING', 'STOPPING')
   OR coalesce(w.stopped_at, w.heartbeat_at) >= now() - make_interval(secs => %s)
ORDER BY w.started_at DESC
LIMIT %s
"""

SERVER_NOW: Final = "SELECT now()"

# --------------------------------------------------------------------------- prune


def _old_terminal(t: str) -> str:
    """Rows of %(status)s sent and finished (or, lacking finished_at, sent) %(age_s)s ago.

    A task is sent before it finishes, so the bound on sent_at adds no condition of its own
    (unless a worker's clock, which stamps finished_at, runs behind the server's, which stamps
    sent_at: such a task waits until its send is as old). It makes the scan a range of
    horsies_task_status_idx (status, sent_at) that ends at the age, instead of a pass over every
    row of the status: on a table holding days of finished tasks, a prune pass reads about
    what it deletes.
    """
    return f"""
    {t}.status = %(status)s
    AND {t}.sent_at < now() - make_interval(secs => %(age_s)s)
    AND ({t}.finished_at IS NULL OR {t}.finished_at < now() - make_interval(secs => %(age_s)s))
    """


# How many tasks of one terminal status, and their attempts, are older than the age.
COUNT_OLD_TASKS: Final = f"""
SELECT count(DISTINCT t.id), count(a.id)
FROM horsies_task t LEFT JOIN horsies_task_attempt a ON a.task_id = t.id
WHERE {_old_terminal("t")}
"""

# Delete one batch of old terminal tasks of one status, and their attempts, in one statement.
# The batch's ids travel as one array: `= ANY(array)` probes the primary key and the unique
# (task_id, attempt) index, where a join with the batch may be planned as a hash join that
# reads both whole tables for each batch.
DELETE_OLD_TASKS: Final = f"""
WITH doomed AS (
    SELECT coalesce(array_agg(d.id), '{{}}') AS ids FROM (
        SELECT t.id FROM horsies_task t
        WHERE {_old_terminal("t")}
        LIMIT %(batch)s
        FOR UPDATE SKIP LOCKED
    ) AS d
),
attempts AS (
    DELETE FROM horsies_task_attempt a
    WHERE a.task_id = ANY((SELECT ids FROM doomed)::uuid[]) RETURNING 1
),
tasks AS (
    DELETE FROM horsies_task t WHERE t.id = ANY((SELECT ids FROM doomed)::uuid[]) RETURNING 1
)
SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM attempts)
"""

_OLD_WORKER: Final = """
    state IN ('STOPPED', 'DEAD')
    AND coalesce(stopped_at, heartbeat_at) < now() - make_interval(secs => %(age_s)s)
"""

COUNT_OLD_WORKERS: Final = f"SELECT count(*) FROM horsies_worker WHERE {_OLD_WORKER}"

# Delete one batch of stopped or dead worker rows.
DELETE_OLD_WORKERS: Final = f"""
WITH doomed AS (
    SELECT id FROM horsies_worker WHERE {_OLD_WORKER} LIMIT %(batch)s FOR UPDATE SKIP LOCKED
)
DELETE FROM horsies_worker w USING doomed WHERE w.id = doomed.id
"""


# --------------------------------------------------------------------------- status readers


@dataclass(frozen=True, slots=True)
class QueueStats:
    name: str
    pending: int
    scheduled: int
    running: int
    failed_last_hour: int
    oldest_pending_s: float | None


@dataclass(frozen=True, slots=True)
class WorkerRow:
    id: str
    name: str
    hostname: str
    pid: int
    processes: int
    queues_json: str
    state: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None
    silent_s: float
    holding: int


def _rows(alias: str, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
    with connections[alias].cursor() as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def queue_stats(alias: str) -> list[QueueStats]:
    """Counts per queue that has any pending, active or recently failed task."""
    return [QueueStats(str(r[0]), *r[1:]) for r in _rows(alias, QUEUE_STATS)]


def workers(alias: str, *, finished_within_s: float, limit: int) -> list[WorkerRow]:
    """Running workers, plus those that stopped or went silent within `finished_within_s`."""
    rows = _rows(alias, WORKERS, (finished_within_s, limit))
    return [WorkerRow(str(r[0]), *r[1:]) for r in rows]


def server_now(alias: str) -> datetime:
    value: datetime = _rows(alias, SERVER_NOW)[0][0]
    return value


# --------------------------------------------------------------------------- pruning


@dataclass(frozen=True, slots=True)
class Pruned:
    tasks: int
    attempts: int


def count_old_tasks(alias: str, status: str, age_s: float) -> Pruned:
    row = _rows(alias, COUNT_OLD_TASKS, {"status": status, "age_s": age_s})[0]
    return Pruned(int(row[0]), int(row[1]))


def delete_old_tasks(alias: str, status: str, age_s: float, batch: int) -> Pruned:
    """Delete up to `batch` old tasks of `status` and their attempts, in one transaction."""
    if status not in TASK_TERMINAL_STATES:
        raise ValueError(f"only terminal tasks can be pruned, not {status!r}")
    params = {"status": status, "age_s": age_s, "batch": batch}
    with transaction.atomic(using=alias):
        row = _rows(alias, DELETE_OLD_TASKS, params)[0]
    return Pruned(int(row[0]), int(row[1]))


def count_old_workers(alias: str, age_s: float) -> int:
    return int(_rows(alias, COUNT_OLD_WORKERS, {"age_s": age_s})[0][0])


def delete_old_workers(alias: str, age_s: float, batch: int) -> int:
    """Delete up to `batch` STOPPED/DEAD worker rows, in one transaction."""
    with transaction.atomic(using=alias), connections[alias].cursor() as cur:
        cur.execute(DELETE_OLD_WORKERS, {"age_s": age_s, "batch": batch})
        return int(cur.rowcount)


# ----------------------------------------------------- leadership, rescue, expiry (services)

# Leadership of the maintenance services: a session lock, released if the leader dies.
TRY_LEADERSHIP: Final = "SELECT pg_try_advisory_lock(%s)"


# Workers whose heartbeat is older than the threshold are dead.
MARK_STALE_WORKERS_DEAD: Final = """
UPDATE horsies_worker SET state = 'DEAD'
WHERE state IN ('RUNNING', 'STOPPING') AND heartbeat_at < now() - make_interval(secs => %s)
RETURNING id
"""


_HOLDER_GONE: Final = """
(t.claim_expires_at < now()
 OR t.claimed_by IS NULL
 OR EXISTS (SELECT 1 FROM horsies_worker w
            WHERE w.id = t.claimed_by AND w.state IN ('DEAD', 'STOPPED')))
"""


# CLAIMED tasks whose holder is gone go back to PENDING (user code never started).
REQUEUE_ORPHAN_CLAIMS: Final = f"""
UPDATE horsies_task t
SET status = 'PENDING', claimed_by = NULL, claim_expires_at = NULL
WHERE t.status = 'CLAIMED' AND {_HOLDER_GONE}
RETURNING t.id
"""


# RUNNING tasks whose holder is gone, locked for the rescuer to record as crashed: the columns
# of a claim (`claim.claimed_from_row`), then the holder and the start time.
LOCK_ORPHAN_RUNS: Final = f"""
SELECT t.id, t.task_name, t.kwargs::text, t.claim_gen, t.retry_count, t.options::text,
    extract(epoch FROM t.good_until)::float8, t.timeout_ms, t.queue_name, t.claimed_by,
    t.started_at
FROM horsies_task t
WHERE t.status = 'RUNNING' AND {_HOLDER_GONE}
LIMIT %s
FOR UPDATE SKIP LOCKED
"""


# PENDING tasks past good_until: EXPIRED without an attempt.
EXPIRE_PENDING: Final = """
UPDATE horsies_task
SET status = 'EXPIRED', error_code = 'TASK_EXPIRED', finished_at = now(),
    failed_reason = 'good_until passed before the task started'
WHERE status = 'PENDING' AND good_until IS NOT NULL AND good_until <= now()
RETURNING id
"""


def try_leadership(conn: psycopg.Connection[Row], key: int) -> bool:
    row = conn.execute(TRY_LEADERSHIP, (key,)).fetchone()
    return bool(row and row[0])


def mark_stale_workers_dead(conn: psycopg.Connection[Row], stale_after_s: float) -> int:
    return len(conn.execute(MARK_STALE_WORKERS_DEAD, (stale_after_s,)).fetchall())


def requeue_orphan_claims(conn: psycopg.Connection[Row]) -> int:
    return len(conn.execute(REQUEUE_ORPHAN_CLAIMS).fetchall())


@dataclass(frozen=True, slots=True)
class OrphanRun:
    """A RUNNING task whose worker is gone, as the claim its worker had."""

    claimed: Claimed
    worker_id: uuid.UUID | None
    started_at: datetime | None


def lock_orphan_runs(conn: psycopg.Connection[Row], limit: int) -> list[OrphanRun]:
    rows = conn.execute(LOCK_ORPHAN_RUNS, (limit,)).fetchall()
    return [OrphanRun(claimed_from_row(r[:9]), r[9], r[10]) for r in rows]


def expire_pending(conn: psycopg.Connection[Row]) -> int:
    return len(conn.execute(EXPIRE_PENDING).fetchall())


# Repair half-advanced workflows (a bug or a hand edit; see migration 0008), a bounded batch.
REPAIR_WORKFLOWS: Final = "SELECT horsies_wf_repair(%s)"
REPAIR_BATCH: Final = 100


def repair_workflows(conn: psycopg.Connection[Row]) -> int:
    """Repair workflows a crash-free path could not have left half-advanced; how many."""
    row = conn.execute(REPAIR_WORKFLOWS, (REPAIR_BATCH,)).fetchone()
    return int(row[0]) if row else 0


# End workflows paused for too long as EXPIRED (see migration 0009), a bounded batch.
EXPIRE_PAUSED_WORKFLOWS: Final = "SELECT horsies_wf_expire_paused(make_interval(secs => %s), %s)"


def expire_paused_workflows(conn: psycopg.Connection[Row], after_s: float) -> int:
    """End workflows paused for longer than `after_s` seconds; how many."""
    row = conn.execute(EXPIRE_PAUSED_WORKFLOWS, (after_s, REPAIR_BATCH)).fetchone()
    return int(row[0]) if row else 0
