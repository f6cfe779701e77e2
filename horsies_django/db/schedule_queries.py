"""The statements of periodic schedules: writing the declared ones, finding due ones, and firing
a slot under the schedule's advisory lock (see `horsies_django.schedules.firing`)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import psycopg
from django.db import connections as django_connections

from horsies_django.db.connections import Row
from horsies_django.db.producer_queries import NewTask

# Two-key advisory locks: this class, and the schedule name's hash.
SCHEDULE_LOCK_CLASS: Final = zlib.crc32(b"horsies_django.schedule") & 0x7FFFFFFF


@dataclass(frozen=True, slots=True)
class DeclaredRow:
    name: str
    task_name: str
    kwargs_json: str
    pattern: str
    timezone: str
    enabled: bool
    catch_up_missed: bool
    max_catch_up: int
    first_slot: datetime  # used when the schedule is new or its pattern or timezone changed


# A declared schedule: inserted, or brought up to date. Its next run is recomputed only when
# its pattern or timezone changed; `enabled` follows the code only when the code changed it.
UPSERT: Final = """
INSERT INTO horsies_schedule (
    name, task_name, kwargs, pattern, timezone, enabled, code_enabled, declared,
    catch_up_missed, max_catch_up, next_run_at, run_count, created_at, updated_at)
VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s, true, %s, %s, %s, 0, now(), now())
ON CONFLICT (name) DO UPDATE SET
    task_name = EXCLUDED.task_name, kwargs = EXCLUDED.kwargs, declared = true,
    catch_up_missed = EXCLUDED.catch_up_missed, max_catch_up = EXCLUDED.max_catch_up,
    next_run_at = CASE
        WHEN horsies_schedule.pattern IS DISTINCT FROM EXCLUDED.pattern
          OR horsies_schedule.timezone IS DISTINCT FROM EXCLUDED.timezone
        THEN EXCLUDED.next_run_at ELSE horsies_schedule.next_run_at END,
    pattern = EXCLUDED.pattern, timezone = EXCLUDED.timezone,
    enabled = CASE
        WHEN horsies_schedule.code_enabled IS DISTINCT FROM EXCLUDED.code_enabled
        THEN EXCLUDED.enabled ELSE horsies_schedule.enabled END,
    code_enabled = EXCLUDED.code_enabled,
    updated_at = now()
WHERE (horsies_schedule.task_name, horsies_schedule.kwargs, horsies_schedule.pattern,
       horsies_schedule.timezone, horsies_schedule.code_enabled, horsies_schedule.declared,
       horsies_schedule.catch_up_missed, horsies_schedule.max_catch_up)
  IS DISTINCT FROM
      (EXCLUDED.task_name, EXCLUDED.kwargs, EXCLUDED.pattern, EXCLUDED.timezone,
       EXCLUDED.code_enabled, true, EXCLUDED.catch_up_missed, EXCLUDED.max_catch_up)
"""

# Schedules no longer declared are kept, disabled (a rolling deploy's older scheduler may not
# know a new one: declaring it again restores the code's `enabled`).
UNDECLARE: Final = """
UPDATE horsies_schedule SET declared = false, enabled = false, code_enabled = NULL,
    updated_at = now()
WHERE declared AND name <> ALL(%s::text[])
RETURNING name
"""


def write_declared(conn: psycopg.Connection[Row], rows: Sequence[DeclaredRow]) -> list[str]:
    """Write the declared schedules; the names of those no longer declared (now disabled)."""
    with conn.transaction():
        for r in rows:
            conn.execute(
                UPSERT,
                (
                    r.name, r.task_name, r.kwargs_json, r.pattern, r.timezone, r.enabled,
                    r.enabled, r.catch_up_missed, r.max_catch_up, r.first_slot,
                ),
            )  # fmt: skip
        gone = conn.execute(UNDECLARE, ([r.name for r in rows],)).fetchall()
    return [str(g[0]) for g in gone]


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    name: str
    task_name: str
    kwargs_json: str
    pattern: str
    timezone: str
    catch_up_missed: bool
    max_catch_up: int
    next_run_at: datetime | None


_COLUMNS: Final = (
    "name, task_name, kwargs::text, pattern, timezone, catch_up_missed, max_catch_up, next_run_at"
)

# Enabled schedules with their next run (NULL: not computed yet); and the database's clock.
ENABLED: Final = "SELECT name, next_run_at FROM horsies_schedule WHERE enabled ORDER BY name"
NOW: Final = "SELECT statement_timestamp()"


def database_now(conn: psycopg.Connection[Row]) -> datetime:
    row = conn.execute(NOW).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def enabled(conn: psycopg.Connection[Row]) -> list[tuple[str, datetime | None]]:
    return [(str(name), at) for name, at in conn.execute(ENABLED).fetchall()]


# The schedule's advisory lock (held to the end of the transaction), then its row as it is now.
LOCK: Final = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
READ_ENABLED: Final = f"SELECT {_COLUMNS} FROM horsies_schedule WHERE name = %s AND enabled"


def lock_and_read(conn: psycopg.Connection[Row], name: str) -> ScheduleRow | None:
    """Take the schedule's advisory lock (until commit) and read it; None if disabled/gone."""
    conn.execute(LOCK, (SCHEDULE_LOCK_CLASS, name))
    row = conn.execute(READ_ENABLED, (name,)).fetchone()
    return None if row is None else ScheduleRow(*row)


# One slot's task: inserted once (its id derives from schedule and slot), PENDING at once.
INSERT_SLOT_TASK: Final = """
INSERT INTO horsies_task (
    id, task_name, queue_name, priority, status, kwargs, sent_at, enqueued_at, good_until,
    timeout_ms, retry_count, max_retries, options, enqueue_sha, claim_gen, sent_by)
VALUES (%s, %s, %s, %s, 'PENDING', %s::jsonb, statement_timestamp(), statement_timestamp(),
    %s, %s, 0, %s, %s::jsonb, %s, 0, %s)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""


def insert_slot_task(conn: psycopg.Connection[Row], task: NewTask, sent_by: str) -> bool:
    """Insert a slot's task; False if that slot's task exists already."""
    row = conn.execute(
        INSERT_SLOT_TASK,
        (
            task.task_id, task.task_name, task.queue_name, task.priority, task.kwargs_json,
            task.good_until, task.timeout_ms, task.max_retries, task.options_json,
            task.enqueue_sha, sent_by,
        ),
    ).fetchone()  # fmt: skip
    return row is not None


RECORD_RUN: Final = """
UPDATE horsies_schedule
SET next_run_at = %s, last_slot_at = coalesce(%s, last_slot_at),
    last_task_id = coalesce(%s::uuid, last_task_id),
    last_run_at = CASE WHEN %s > 0 THEN statement_timestamp() ELSE last_run_at END,
    run_count = run_count + %s
WHERE name = %s
"""


def record_run(
    conn: psycopg.Connection[Row],
    name: str,
    next_run_at: datetime,
    last_slot: datetime | None,
    last_task_id: str | None,
    fired: int,
) -> None:
    conn.execute(RECORD_RUN, (next_run_at, last_slot, last_task_id, fired, fired, name))


# The admin's toggle: enabling forgets the next run, so the next scheduler starts from its now
# (slots passed while disabled are not fired).
SET_ENABLED: Final = """
UPDATE horsies_schedule
SET enabled = %s, next_run_at = CASE WHEN %s THEN NULL ELSE next_run_at END, updated_at = now()
WHERE name = %s AND enabled IS DISTINCT FROM %s
RETURNING name
"""


def set_enabled(alias: str, name: str, enabled: bool) -> bool:
    """Enable or disable a schedule (on Django's connection); False if it was so already."""
    with django_connections[alias].cursor() as cur:
        cur.execute(SET_ENABLED, (enabled, enabled, name, enabled))
        return cur.fetchone() is not None
