"""Firing schedules: exactly one task per slot, however many schedulers run.

A slot's task id is `uuid5(name, slot)` and is inserted with ON CONFLICT DO NOTHING, so a slot
can produce one task at most; a per-schedule advisory lock, held while the slots are decided,
the tasks inserted and the next run recorded (one transaction), makes the schedulers take turns,
so a slot is also fired at least once by whichever comes first. The task carries its
definition's retry policy, timeout and queue, like a send.
"""

from __future__ import annotations

import logging
import uuid
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

import psycopg

from horsies_django import codec, sending
from horsies_django.db import schedule_queries
from horsies_django.db.connections import Row
from horsies_django.db.producer_queries import NewTask
from horsies_django.registered import table
from horsies_django.schedules.declared import Schedule
from horsies_django.schedules.patterns import parse_pattern
from horsies_django.schedules.planning import first_slot, plan

logger = logging.getLogger("horsies_django.scheduler")

SLOT_NAMESPACE: Final = uuid.UUID("6f1d8a52-4c0e-5b7a-9d3e-2a61c0b8e4f7")


def slot_task_id(name: str, slot: datetime) -> str:
    """The id of the task a schedule's slot fires: the same in every scheduler."""
    return str(uuid.uuid5(SLOT_NAMESPACE, f"{name}@{slot.isoformat()}"))


def write_declared(
    conn: psycopg.Connection[Row], schedules: Mapping[str, Schedule], now: datetime
) -> list[str]:
    """Write the declared schedules; names of stored ones no longer declared (now disabled)."""
    rows = [
        schedule_queries.DeclaredRow(
            name=s.name,
            task_name=s.task,
            kwargs_json=codec.dumps(s.kwargs),
            pattern=str(s.pattern),
            timezone=s.timezone_name,
            enabled=s.enabled,
            catch_up_missed=s.catch_up_missed,
            max_catch_up=s.max_catch_up,
            first_slot=first_slot(s.pattern, s.zone(), now),
        )
        for s in schedules.values()
    ]
    gone = schedule_queries.write_declared(conn, rows)
    for name in gone:
        logger.warning("schedule %s is no longer declared: kept, disabled", name)
    return gone


@dataclass(frozen=True, slots=True)
class Fired:
    name: str
    fired: int  # tasks inserted by this call
    skipped: int  # slots missed while no scheduler ran, not fired
    next_run_at: datetime | None
    problem: str | None = None  # why this process cannot fire it (left to another, or a fix)


def fire(conn: psycopg.Connection[Row], name: str, now: datetime) -> Fired | None:
    """Fire what is due of one schedule at `now`; None if it is disabled, gone or not due.
    One this process cannot fire (its task is not registered here, its stored pattern or
    timezone is invalid) is left as it is, with the `problem`."""
    with conn.transaction():
        row = schedule_queries.lock_and_read(conn, name)
        if row is None or (row.next_run_at is not None and row.next_run_at > now):
            return None
        definition = table.get(row.task_name)
        if definition is None:
            problem = (
                f"task {row.task_name} is not registered in this process; another scheduler "
                "may fire it (add its module to TASK_MODULES)"
            )
            return Fired(name, 0, 0, row.next_run_at, problem=problem)
        try:
            pattern = parse_pattern(row.pattern)
            zone = zoneinfo.ZoneInfo(row.timezone)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError) as exc:
            problem = f"stored pattern {row.pattern!r} or timezone {row.timezone!r}: {exc}"
            return Fired(name, 0, 0, row.next_run_at, problem=problem)
        if row.next_run_at is None:  # new, re-enabled or changed: starts after now
            upcoming = first_slot(pattern, zone, now)
            schedule_queries.record_run(conn, name, upcoming, None, None, 0)
            return Fired(name, 0, 0, upcoming)
        decided = plan(
            pattern,
            zone,
            row.next_run_at,
            now,
            catch_up=row.catch_up_missed,
            max_catch_up=row.max_catch_up,
        )
        if decided.skipped:
            logger.warning(
                "schedule %s: %d slot(s) from %s missed while no scheduler ran; skipped (%s)",
                name,
                decided.skipped,
                decided.skipped_from.isoformat() if decided.skipped_from else "?",
                "past max_catch_up" if row.catch_up_missed else "catch_up_missed is off",
            )
        kwargs = codec.loads(row.kwargs_json)
        fired, last_id = 0, None
        for slot in decided.fire:
            prepared = sending.prepare(definition, kwargs)
            if prepared.is_err():
                logger.error(
                    "schedule %s: slot %s not fired: %s (fix the schedule's kwargs; "
                    "`manage.py check` reports it)",
                    name,
                    slot.isoformat(),
                    prepared.err_value.message,
                )
                continue
            payload = replace(prepared.ok_value, task_id=slot_task_id(name, slot))
            payload = replace(payload, enqueue_sha=sending.payload_sha(payload))
            task = NewTask(
                task_id=payload.task_id,
                task_name=payload.task_name,
                queue_name=payload.queue_name,
                priority=payload.priority,
                kwargs_json=payload.kwargs_json,
                delay_seconds=0.0,
                good_until=None,
                timeout_ms=definition.timeout_ms,
                max_retries=definition.max_retries,
                options_json=definition.options_json,
                enqueue_sha=payload.enqueue_sha,
            )
            if schedule_queries.insert_slot_task(conn, task, f"schedule:{name}"[:64]):
                fired += 1
                last_id = payload.task_id
        last_slot = decided.fire[-1] if decided.fire else None
        schedule_queries.record_run(conn, name, decided.next_run_at, last_slot, last_id, fired)
        return Fired(name, fired, decided.skipped, decided.next_run_at)
