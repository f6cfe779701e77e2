"""The statements of producers: sending, reading a task's outcome, info and attempts, cancelling.

They run on the caller's Django connection, inside the caller's transaction (except
`fetch_outcomes`, which the result listener runs on its own). Rows come back
as typed records (`OutcomeRow`, `InfoRow`, `AttemptRow`), never as bare tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple

import psycopg
from django.db import IntegrityError, connections

from horsies_django.db.connections import Row, execute_on_django_connection

# --------------------------------------------------------------------------- sending

# Insert one PENDING task; eligibility time is computed by the server clock. A replayed send
# (same id) fails on the primary key and is told apart by its enqueue_sha; a plain INSERT costs
# the server less than a speculative `ON CONFLICT` one on this hot path.
INSERT_TASK: Final = """
INSERT INTO horsies_task (
    id, task_name, queue_name, priority, status, kwargs, sent_at, enqueued_at, good_until,
    timeout_ms, retry_count, max_retries, options, enqueue_sha, claim_gen)
VALUES (%s, %s, %s, %s, 'PENDING', %s::jsonb, statement_timestamp(),
    statement_timestamp() + make_interval(secs => %s), %s, %s, 0, %s, %s::jsonb, %s, 0)
"""


TASK_PRIMARY_KEY: Final = "horsies_task_pkey"


# Insert many PENDING tasks of one definition in one statement (send_many). The per-row values
# travel as three texts, not arrays, which psycopg would write element by element: the ids and
# the shas joined with commas (they hold none), the arguments as one JSON array of them.
INSERT_TASKS_BULK: Final = """
INSERT INTO horsies_task (
    id, task_name, queue_name, priority, status, kwargs, sent_at, enqueued_at, good_until,
    timeout_ms, retry_count, max_retries, options, enqueue_sha, claim_gen)
SELECT t.id, %s, %s, %s, 'PENDING', t.kwargs, statement_timestamp(), statement_timestamp(),
    %s, %s, 0, %s, %s::jsonb, t.sha, 0
FROM ROWS FROM (
    unnest(string_to_array(%s, ',')::uuid[]),
    jsonb_array_elements(%s::jsonb),
    unnest(string_to_array(%s, ','))
) AS t(id, kwargs, sha)
"""


# The sha of an existing task, to tell an idempotent replay from a conflicting one.
SELECT_ENQUEUE_SHA: Final = "SELECT enqueue_sha FROM horsies_task WHERE id = %s"


class NewTask(NamedTuple):
    """One row to insert (its fields in the order of INSERT_TASK's parameters)."""

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


@dataclass(frozen=True, slots=True)
class NewTasks:
    """Rows of one task to insert at once, due now, alike but for id, arguments and sha."""

    task_name: str
    queue_name: str
    priority: int
    good_until: datetime | None
    timeout_ms: int | None
    max_retries: int
    options_json: str
    task_ids: Sequence[str]
    kwargs_json: Sequence[str]
    enqueue_shas: Sequence[str]


class DuplicateTaskIdError(Exception):
    """A task with this id exists already (a replayed send)."""


def insert_task(alias: str, task: NewTask, *, prepare: bool = True) -> None:
    """Insert a task; raises DuplicateTaskIdError if its id exists (in a transaction, run this in a
    savepoint and read the stored sha with `stored_enqueue_sha` after rolling it back)."""
    try:
        execute_on_django_connection(alias, INSERT_TASK, task, prepare=prepare)
    except IntegrityError as exc:
        diag = getattr(exc.__cause__, "diag", None)
        if getattr(diag, "constraint_name", None) == TASK_PRIMARY_KEY:
            raise DuplicateTaskIdError(task.task_id) from exc
        raise


def stored_enqueue_sha(alias: str, task_id: str) -> str:
    with connections[alias].cursor() as cur:
        cur.execute(SELECT_ENQUEUE_SHA, (task_id,))
        row = cur.fetchone()
    return str(row[0]) if row else ""


def insert_tasks(alias: str, tasks: NewTasks, *, prepare: bool = True) -> None:
    """Insert many tasks sharing one definition and options, in one statement."""
    params = (
        tasks.task_name,
        tasks.queue_name,
        tasks.priority,
        tasks.good_until,
        tasks.timeout_ms,
        tasks.max_retries,
        tasks.options_json,
        ",".join(tasks.task_ids),
        f"[{','.join(tasks.kwargs_json)}]",
        ",".join(tasks.enqueue_shas),
    )
    execute_on_django_connection(alias, INSERT_TASKS_BULK, params, prepare=prepare)


# --------------------------------------------------------------------------- reading

# Everything `TaskHandle.info()` shows, optionally with result and failure reason: the columns
# of `InfoRow`, in its field order.
SELECT_TASK_INFO: Final = """
SELECT id, task_name, status, queue_name, priority, retry_count, max_retries, sent_at,
    enqueued_at, next_retry_at, good_until, claimed_at, started_at, finished_at, claimed_by,
    error_code, CASE WHEN %s THEN result::text END, CASE WHEN %s THEN failed_reason END
FROM horsies_task WHERE id = %s
"""

# Attempts of one task, newest first: the columns of `AttemptRow`.
SELECT_ATTEMPTS: Final = """
SELECT attempt, outcome, will_retry, error_code, error_message, started_at, finished_at,
    worker_id, pid
FROM horsies_task_attempt WHERE task_id = %s ORDER BY attempt DESC
"""

# The fields `get()` needs to turn a finished row into a TaskResult: the columns of `OutcomeRow`.
SELECT_OUTCOME: Final = """
SELECT status, task_name, result::text, error_code, failed_reason
FROM horsies_task WHERE id = %s
"""

# The same for the tasks a `task_done` notification names (its payload: ids, comma-separated).
SELECT_OUTCOMES: Final = """
SELECT id::text, status, task_name, result::text, error_code, failed_reason
FROM horsies_task WHERE id = ANY(string_to_array(%s, ',')::uuid[])
"""


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """What a finished (or unfinished) task says about its result."""

    status: str
    task_name: str
    result_json: str | None
    error_code: str | None
    failed_reason: str | None


@dataclass(frozen=True, slots=True)
class InfoRow:
    """A task's metadata; `result_json` and `failed_reason` only when asked for."""

    task_id: str
    task_name: str
    status: str
    queue_name: str
    priority: int
    retry_count: int
    max_retries: int
    sent_at: datetime
    enqueued_at: datetime
    next_retry_at: datetime | None
    good_until: datetime | None
    claimed_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    claimed_by: str | None
    error_code: str | None
    result_json: str | None
    failed_reason: str | None

    @property
    def outcome(self) -> OutcomeRow:
        return OutcomeRow(
            self.status, self.task_name, self.result_json, self.error_code, self.failed_reason
        )


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One run of a task."""

    attempt: int
    outcome: str
    will_retry: bool
    error_code: str | None
    error_message: str | None
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    pid: int | None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def fetch_outcome(alias: str, task_id: str) -> OutcomeRow | None:
    with connections[alias].cursor() as cur:
        cur.execute(SELECT_OUTCOME, (task_id,))
        row = cur.fetchone()
    return None if row is None else OutcomeRow(*row)


def fetch_outcomes(conn: psycopg.Connection[Row], task_ids: Sequence[str]) -> dict[str, OutcomeRow]:
    """The rows of `task_ids` by id, read on `conn` (the result listener's own connection, not
    the caller's: it runs outside any transaction of the caller's)."""
    rows = conn.execute(SELECT_OUTCOMES, (",".join(task_ids),)).fetchall()
    return {row[0]: OutcomeRow(*row[1:]) for row in rows}


def fetch_info(
    alias: str, task_id: str, *, include_result: bool, include_failed_reason: bool
) -> InfoRow | None:
    with connections[alias].cursor() as cur:
        cur.execute(SELECT_TASK_INFO, (include_result, include_failed_reason, task_id))
        row = cur.fetchone()
    if row is None:
        return None
    (
        tid,
        name,
        status,
        queue,
        priority,
        retries,
        max_retries,
        sent,
        enqueued,
        next_retry,
        good_until,
        claimed,
        started,
        finished,
        claimed_by,
        code,
        result,
        reason,
    ) = row
    return InfoRow(
        task_id=str(tid),
        task_name=name,
        status=status,
        queue_name=queue,
        priority=priority,
        retry_count=retries,
        max_retries=max_retries,
        sent_at=sent,
        enqueued_at=enqueued,
        next_retry_at=next_retry,
        good_until=good_until,
        claimed_at=claimed,
        started_at=started,
        finished_at=finished,
        claimed_by=_text_or_none(claimed_by),
        error_code=code,
        result_json=result,
        failed_reason=reason,
    )


def fetch_attempts(alias: str, task_id: str) -> list[AttemptRow]:
    with connections[alias].cursor() as cur:
        cur.execute(SELECT_ATTEMPTS, (task_id,))
        rows = cur.fetchall()
    return [
        AttemptRow(
            attempt=attempt,
            outcome=outcome,
            will_retry=will_retry,
            error_code=code,
            error_message=message,
            started_at=started,
            finished_at=finished,
            worker_id=_text_or_none(worker),
            pid=pid,
        )
        for attempt, outcome, will_retry, code, message, started, finished, worker, pid in rows
    ]


# --------------------------------------------------------------------------- cancelling

# Cancel a task that has not started; returns the row only if it was PENDING or CLAIMED.
CANCEL_TASK: Final = """
UPDATE horsies_task
SET status = 'CANCELLED', error_code = 'TASK_CANCELLED', finished_at = now(),
    failed_reason = %s, claimed_by = NULL, claim_expires_at = NULL
WHERE id = %s AND status IN ('PENDING', 'CLAIMED')
RETURNING id
"""


SELECT_STATUS: Final = "SELECT status FROM horsies_task WHERE id = %s"


def cancel_task(alias: str, task_id: str, reason: str) -> str | None:
    """Cancel a PENDING/CLAIMED task. Returns None when cancelled, else its current status
    ("" when the task does not exist)."""
    with connections[alias].cursor() as cur:
        cur.execute(CANCEL_TASK, (reason, task_id))
        if cur.fetchone() is not None:
            return None
        cur.execute(SELECT_STATUS, (task_id,))
        row = cur.fetchone()
        return str(row[0]) if row else ""
