"""Runs the statements of `sql.py` for senders, readers, workers and operator actions.

(`testing_queries.py`, `maintenance_queries.py` and `admin_queries.py` run their own callers'
statements; no code outside `db/` runs SQL or changes a task's status.)

Producer-side functions run on the caller's Django connection (so a send joins the caller's
transaction); worker-side functions run on the worker's own autocommit psycopg connection.
Every transition is fenced: it names the status, and after the claim the generation, it expects.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from django.db import IntegrityError, connections

from horsies_django.db import sql

type Row = tuple[Any, ...]


# --------------------------------------------------------------------------- producer side


@dataclass(frozen=True, slots=True)
class NewTask:
    """One row to insert."""

    task_id: str
    task_name: str
    queue_name: str
    priority: int
    kwargs_json: str
    delay_seconds: float
    good_until: datetime | None
    timeout_ms: int | None
    max_retries: int
    options_json: str
    enqueue_sha: str


NEVER_AUTOMATICALLY = 2**31  # a psycopg prepare_threshold no statement ever reaches


class DuplicateTaskIdError(Exception):
    """A task with this id exists already (a replayed send)."""


def insert_task(alias: str, task: NewTask, *, prepare: bool = True) -> None:
    """Insert a task; raises DuplicateTaskIdError if its id exists (in a transaction, run this in a
    savepoint and read the stored sha with `stored_enqueue_sha` after rolling it back)."""
    try:
        _insert_task(alias, task, prepare=prepare)
    except IntegrityError as exc:
        diag = getattr(exc.__cause__, "diag", None)
        if getattr(diag, "constraint_name", None) == sql.TASK_PRIMARY_KEY:
            raise DuplicateTaskIdError(task.task_id) from exc
        raise


def stored_enqueue_sha(alias: str, task_id: str) -> str:
    with connections[alias].cursor() as cur:
        cur.execute(sql.SELECT_ENQUEUE_SHA, (task_id,))
        row = cur.fetchone()
    return str(row[0]) if row else ""


def _insert_task(alias: str, task: NewTask, *, prepare: bool) -> None:
    params = (
        task.task_id,
        task.task_name,
        task.queue_name,
        task.priority,
        task.kwargs_json,
        task.delay_seconds,
        task.good_until,
        task.timeout_ms,
        task.max_retries,
        task.options_json,
        task.enqueue_sha,
    )
    execute_on_django_connection(alias, sql.INSERT_TASK, params, prepare=prepare)


def execute_on_django_connection(
    alias: str, query: str, params: Sequence[Any], *, prepare: bool
) -> None:
    """Run one statement on Django's connection of `alias`, in the caller's transaction.

    The hot single send skips Django's cursor wrapper and client-side binding, and with
    `prepare` runs as a server-side prepared statement (`HORSIES["PREPARED_STATEMENTS"]`),
    unless something observes queries: with query logging (DEBUG, `CaptureQueriesContext`) or
    execute wrappers installed, it goes through Django's cursor like any other query.
    """
    db = connections[alias]
    if db.queries_logged or db.execute_wrappers:
        with db.cursor() as cur:
            cur.execute(query, params)
        return
    db.ensure_connection()
    db.validate_no_broken_transaction()
    conn = db.connection
    if prepare and conn.prepare_threshold is None:
        # Django disables preparing by default; allow it for statements asked to prepare
        # explicitly, but never automatically (so nothing else on the connection changes).
        conn.prepare_threshold = NEVER_AUTOMATICALLY
    with db.wrap_database_errors, psycopg.Cursor(conn) as cur:
        cur.execute(query, params, prepare=prepare)


def insert_tasks(
    alias: str, template: NewTask, rows: Sequence[tuple[str, str, str]], *, prepare: bool = True
) -> None:
    """Insert many tasks sharing one definition: rows are (task_id, kwargs_json, sha)."""
    ids, kwargs, shas = zip(*rows, strict=True) if rows else ((), (), ())
    params = (
        template.task_name,
        template.queue_name,
        template.priority,
        template.delay_seconds,
        template.good_until,
        template.timeout_ms,
        template.max_retries,
        template.options_json,
        list(ids),
        list(kwargs),
        list(shas),
    )
    execute_on_django_connection(alias, sql.INSERT_TASKS_BULK, params, prepare=prepare)


def fetch_outcome(alias: str, task_id: str) -> Row | None:
    """(status, task_name, result_json, error_code, failed_reason) of a task, or None."""
    with connections[alias].cursor() as cur:
        cur.execute(sql.SELECT_OUTCOME, (task_id,))
        row: Row | None = cur.fetchone()
        return row


def fetch_info(
    alias: str, task_id: str, *, include_result: bool, include_failed_reason: bool
) -> Row | None:
    with connections[alias].cursor() as cur:
        cur.execute(sql.SELECT_TASK_INFO, (include_result, include_failed_reason, task_id))
        row: Row | None = cur.fetchone()
        return row


def fetch_attempts(alias: str, task_id: str) -> list[Row]:
    with connections[alias].cursor() as cur:
        cur.execute(sql.SELECT_ATTEMPTS, (task_id,))
        return list(cur.fetchall())


def cancel_task(alias: str, task_id: str, reason: str) -> str | None:
    """Cancel a PENDING/CLAIMED task. Returns None when cancelled, else its current status
    ("" when the task does not exist)."""
    with connections[alias].cursor() as cur:
        cur.execute(sql.CANCEL_TASK, (reason, task_id))
        if cur.fetchone() is not None:
            return None
        cur.execute(sql.SELECT_STATUS, (task_id,))
        row = cur.fetchone()
        return str(row[0]) if row else ""


# --------------------------------------------------------------------------- worker side


def connection_params(alias: str) -> dict[str, Any]:
    """psycopg connection arguments for the database of `alias` (read on the calling thread)."""
    params = dict(connections[alias].get_connection_params())
    for key in ("cursor_factory", "context"):
        params.pop(key, None)
    if params.get("prepare_threshold", 0) is None:
        params.pop("prepare_threshold")
    params.setdefault("application_name", "horsies_worker")
    return params


def connect(alias: str, *, autocommit: bool = True) -> psycopg.Connection[Row]:
    """A fresh psycopg connection to the database of `alias` (not Django's own)."""
    return connect_with(connection_params(alias), autocommit=autocommit)


def connect_with(params: dict[str, Any], *, autocommit: bool = True) -> psycopg.Connection[Row]:
    return psycopg.connect(autocommit=autocommit, **params)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A task this worker now holds, with the generation that fences it."""

    task_id: str
    task_name: str
    kwargs_json: str
    claim_gen: int
    retry_count: int
    options_json: str
    good_until: datetime | None
    timeout_ms: int | None
    queue_name: str


@dataclass(frozen=True, slots=True)
class QueueSlot:
    name: str
    rank: int
    limit: int


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


# The claim statements by the name they are prepared under.
CLAIM_STATEMENTS: dict[str, str] = {
    "horsies_claim": sql.CLAIM,
    "horsies_claim_one_queue": sql.CLAIM_ONE_QUEUE,
}


def claim_request(
    worker_id: uuid.UUID, slots: Sequence[QueueSlot], limit: int, lease_s: float
) -> tuple[str, list[str]]:
    """The claim statement that suits `slots` (see `CLAIM_STATEMENTS`) and its parameters."""
    if len(slots) == 1:
        only = slots[0]
        params = [str(worker_id), str(lease_s), only.name, str(min(limit, only.limit))]
        return "horsies_claim_one_queue", params
    return "horsies_claim", claim_params(worker_id, slots, limit, lease_s)


def claim_params(
    worker_id: uuid.UUID, slots: Sequence[QueueSlot], limit: int, lease_s: float
) -> list[str]:
    """The parameters of `sql.CLAIM`, as text."""
    return [
        text_array([s.name for s in slots]),
        text_array([str(s.rank) for s in slots]),
        text_array([str(s.limit) for s in slots]),
        str(limit),
        str(worker_id),
        str(lease_s),
    ]


def text_array(values: Sequence[str]) -> str:
    """A PostgreSQL array literal of `values`, each quoted."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


def claimed_from_row(row: Sequence[Any]) -> Claimed:
    """A row of `sql.CLAIM`, typed by psycopg or as text (from an `Outbox`)."""
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


def lock_caps(conn: psycopg.Connection[Row], key: int) -> None:
    """Serialise capped claims until the surrounding transaction ends."""
    conn.execute(sql.LOCK_CAPS, (key,))


def active_counts(conn: psycopg.Connection[Row], queues: Sequence[str]) -> dict[str, int]:
    return dict(conn.execute(sql.ACTIVE_PER_QUEUE, (list(queues),)).fetchall())


def active_total(conn: psycopg.Connection[Row]) -> int:
    row = conn.execute(sql.ACTIVE_TOTAL).fetchone()
    return int(row[0]) if row else 0


def next_due_seconds(conn: psycopg.Connection[Row], queues: Sequence[str]) -> float | None:
    row = conn.execute(sql.NEXT_DUE, (list(queues),)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


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
    rows = conn.execute(sql.FINISH, (finish_payload(outcomes),)).fetchall()
    return {str(r[0]) for r in rows}


def finish_payload(outcomes: Sequence[Finish]) -> str:
    """The JSON parameter of `sql.FINISH`."""
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


def claims_payload(claims: Sequence[tuple[str, int]]) -> str:
    """The JSON parameter of `sql.RELEASE_CLAIMS`."""
    return json.dumps([{"id": task_id, "gen": gen} for task_id, gen in claims])


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
        sql.REGISTER_WORKER,
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
    row = conn.execute(sql.HEARTBEAT, params).fetchone()
    return int(row[0]) if row else 0


def held_tasks(conn: psycopg.Connection[Row], worker_id: uuid.UUID) -> list[tuple[str, int, str]]:
    """(id, generation, status) of every CLAIMED/RUNNING task claimed by this worker."""
    rows = conn.execute(sql.HELD_TASKS, (worker_id,)).fetchall()
    return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]


def set_idle_session_timeout(conn: psycopg.Connection[Row], timeout_ms: int) -> None:
    conn.execute(sql.IDLE_SESSION_TIMEOUT, (f"{timeout_ms}ms", f"{timeout_ms}ms"))


def connect_worker(params: dict[str, Any]) -> psycopg.Connection[Row]:
    """An autocommit connection for a worker's own statements (no JIT)."""
    conn = connect_with(params)
    conn.execute(sql.NO_JIT_SESSION)
    return conn


def commit_asynchronously(conn: psycopg.Connection[Row]) -> None:
    """This session's commits return before their WAL is flushed (see sql.ASYNC_SESSION)."""
    conn.execute(sql.ASYNC_SESSION)


def stop_worker(
    conn: psycopg.Connection[Row], worker_id: uuid.UUID, reason: str | None = None
) -> None:
    conn.execute(sql.STOP_WORKER, (reason, worker_id))


# --------------------------------------------------------------------------- operator actions


def reenqueue_copy(alias: str, task_id: str, new_id: str) -> tuple[str, str] | None:
    """Insert a PENDING copy of a finished task; (new id, task name), or None if not eligible."""
    with connections[alias].cursor() as cur:
        cur.execute(sql.REENQUEUE_COPY, (new_id, new_id, task_id))
        row = cur.fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def run_now(alias: str, task_id: str) -> bool:
    with connections[alias].cursor() as cur:
        cur.execute(sql.RUN_NOW, (task_id,))
        return cur.fetchone() is not None


def task_status(alias: str, task_id: str) -> str | None:
    with connections[alias].cursor() as cur:
        cur.execute(sql.SELECT_STATUS, (task_id,))
        row = cur.fetchone()
    return None if row is None else str(row[0])


# --------------------------------------------------------------------------- maintenance


def try_leadership(conn: psycopg.Connection[Row], key: int) -> bool:
    row = conn.execute(sql.TRY_LEADERSHIP, (key,)).fetchone()
    return bool(row and row[0])


def mark_stale_workers_dead(conn: psycopg.Connection[Row], stale_after_s: float) -> int:
    return len(conn.execute(sql.MARK_STALE_WORKERS_DEAD, (stale_after_s,)).fetchall())


def requeue_orphan_claims(conn: psycopg.Connection[Row]) -> int:
    return len(conn.execute(sql.REQUEUE_ORPHAN_CLAIMS).fetchall())


@dataclass(frozen=True, slots=True)
class OrphanRun:
    claimed: Claimed
    worker_id: uuid.UUID | None
    started_at: datetime | None


def lock_orphan_runs(conn: psycopg.Connection[Row], limit: int) -> list[OrphanRun]:
    rows = conn.execute(sql.LOCK_ORPHAN_RUNS, (limit,)).fetchall()
    return [
        OrphanRun(Claimed(str(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]), r[9], r[10])
        for r in rows
    ]


def expire_pending(conn: psycopg.Connection[Row]) -> int:
    return len(conn.execute(sql.EXPIRE_PENDING).fetchall())
