"""Operator actions shared by the admin and the public API: re-enqueue and run now.

(Cancelling lives in `cancelling.py`.) Each action names the states it applies to and refuses
anything else with an `Err` that says why, so a bulk action can report what it skipped.
"""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError
from uuid_utils.compat import uuid7

from horsies_django.conf import horsies_settings
from horsies_django.db import admin_queries
from horsies_django.handles import TaskHandle
from horsies_django.states import REENQUEUABLE_STATES, RUN_NOW_STATES, in_order
from horsies_django.types import BrokerError, BrokerErrorCode, BrokerResult, Err, Ok


def _refused(task_id: str, status: str | None, what: str, allowed: str) -> Err[BrokerError]:
    if status is None:
        return Err(BrokerError(BrokerErrorCode.TASK_NOT_FOUND, f"no task with id {task_id}"))
    return Err(
        BrokerError(
            BrokerErrorCode.INVALID_STATE,
            f"task {task_id} is {status}: only {allowed} tasks can be {what}",
        )
    )


def reenqueue(task_id: str) -> BrokerResult[TaskHandle[Any]]:
    """Send a FAILED, CANCELLED or EXPIRED task (`REENQUEUABLE_STATES`) again as a new task.

    The new task has the same arguments and records the original in `origin`; the original is
    left untouched.
    """
    alias = horsies_settings().DATABASE_ALIAS
    try:
        copied = admin_queries.reenqueue_copy(alias, str(task_id), str(uuid7()))
        if copied is None:
            status = admin_queries.task_status(alias, str(task_id))
            allowed = "/".join(in_order(REENQUEUABLE_STATES))
            return _refused(str(task_id), status, "re-enqueued", allowed)
    except DatabaseError as exc:
        return Err(BrokerError(BrokerErrorCode.BROKER_ERROR, f"database error: {exc}", exc))
    new_id, task_name = copied
    return Ok(TaskHandle(new_id, task_name))


def run_now(task_id: str) -> BrokerResult[None]:
    """Make a PENDING task (`RUN_NOW_STATES`) waiting for a retry or a delay eligible now."""
    alias = horsies_settings().DATABASE_ALIAS
    try:
        if admin_queries.run_now(alias, str(task_id)):
            return Ok(None)
        status = admin_queries.task_status(alias, str(task_id))
    except DatabaseError as exc:
        return Err(BrokerError(BrokerErrorCode.BROKER_ERROR, f"database error: {exc}", exc))
    if status in RUN_NOW_STATES:  # the status allows it: the task is simply due already
        return Err(
            BrokerError(
                BrokerErrorCode.INVALID_STATE,
                f"task {task_id} is already eligible to run: nothing to bring forward",
            )
        )
    allowed = "/".join(in_order(RUN_NOW_STATES))
    return _refused(str(task_id), status, "run now", f"{allowed} (waiting)")
