"""The statements of the `django.tasks` backend: enqueue a task, read it back with its attempts.

They run on the caller's Django connection, inside the caller's transaction, like a send. A
row of a `django.tasks` task is an ordinary task row (the worker claims, runs and records it
like any other); only its name (`django.tasks:<module path>`), its arguments
(`{"args": [...], "kwargs": {...}}`) and `sent_by` differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from django.db import connections

# One PENDING task, eligible at `run_after` (the database's now when it is past or NULL, so an
# old `run_after` does not jump the queue's order of eligibility).
INSERT_DJANGO_TASK: Final = """
INSERT INTO horsies_task (
    id, task_name, queue_name, priority, status, kwargs, sent_at, enqueued_at, good_until,
    timeout_ms, retry_count, max_retries, options, enqueue_sha, claim_gen, sent_by)
VALUES (%s, %s, %s, %s, 'PENDING', %s::jsonb, statement_timestamp(),
    GREATEST(statement_timestamp(), %s::timestamptz), NULL, %s, 0, %s, %s::jsonb, %s, 0,
    'django.tasks')
RETURNING sent_at
"""

# What a `django.tasks` result shows of a task: the columns of `DjangoTaskRow`.
SELECT_DJANGO_TASK: Final = """
SELECT task_name, status, kwargs::text, options::text, result::text, error_code, failed_reason,
    retry_count, sent_at, started_at, finished_at, claimed_by::text
FROM horsies_task WHERE id = %s
"""

# Every attempt of a task, oldest first: the columns of `AttemptDetail`.
SELECT_ATTEMPT_DETAILS: Final = """
SELECT attempt, outcome, error_code, error_message, traceback, worker_id::text, started_at,
    finished_at
FROM horsies_task_attempt WHERE task_id = %s ORDER BY attempt
"""


@dataclass(frozen=True, slots=True)
class NewDjangoTask:
    """One row to insert for `Task.enqueue()`."""

    task_id: str
    task_name: str
    queue_name: str
    priority: int
    kwargs_json: str
    run_after: datetime | None
    timeout_ms: int | None
    max_retries: int
    options_json: str
    enqueue_sha: str


@dataclass(frozen=True, slots=True)
class DjangoTaskRow:
    """A task row as a `django.tasks` result needs it."""

    task_name: str
    status: str
    kwargs_json: str
    options_json: str
    result_json: str | None
    error_code: str | None
    failed_reason: str | None
    retry_count: int
    sent_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    claimed_by: str | None


@dataclass(frozen=True, slots=True)
class AttemptDetail:
    """One run of a task, with its traceback."""

    attempt: int
    outcome: str
    error_code: str | None
    error_message: str | None
    traceback: str | None
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime


def insert_django_task(alias: str, task: NewDjangoTask) -> datetime:
    """Insert the task; returns its `sent_at` (the database's clock)."""
    params = (
        task.task_id,
        task.task_name,
        task.queue_name,
        task.priority,
        task.kwargs_json,
        task.run_after,
        task.timeout_ms,
        task.max_retries,
        task.options_json,
        task.enqueue_sha,
    )
    with connections[alias].cursor() as cur:
        cur.execute(INSERT_DJANGO_TASK, params)
        row = cur.fetchone()
    assert row is not None  # an INSERT ... RETURNING of one row
    sent_at: datetime = row[0]
    return sent_at


def fetch_django_task(alias: str, task_id: str) -> DjangoTaskRow | None:
    with connections[alias].cursor() as cur:
        cur.execute(SELECT_DJANGO_TASK, (task_id,))
        row = cur.fetchone()
    return None if row is None else DjangoTaskRow(*row)


def fetch_attempt_details(alias: str, task_id: str) -> list[AttemptDetail]:
    with connections[alias].cursor() as cur:
        cur.execute(SELECT_ATTEMPT_DETAILS, (task_id,))
        rows = cur.fetchall()
    return [AttemptDetail(*row) for row in rows]
