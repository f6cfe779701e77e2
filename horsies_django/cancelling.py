"""Cancelling tasks that have not started (the one service the API and the admin share)."""

from __future__ import annotations

from django.db import DatabaseError

from horsies_django.conf import horsies_settings
from horsies_django.db import producer_queries
from horsies_django.states import TaskStatus
from horsies_django.types import BrokerError, BrokerErrorCode, BrokerResult, Err, Ok


def cancel(task_id: str, reason: str = "cancelled by request") -> BrokerResult[None]:
    """PENDING/CLAIMED (`CANCELLABLE_STATES`) -> CANCELLED; anything else is refused with why."""
    try:
        status = producer_queries.cancel_task(
            horsies_settings().DATABASE_ALIAS, str(task_id), reason
        )
    except DatabaseError as exc:
        return Err(BrokerError(BrokerErrorCode.BROKER_ERROR, f"database error: {exc}", exc))
    if status is None:
        return Ok(None)
    if status == "":
        return Err(BrokerError(BrokerErrorCode.TASK_NOT_FOUND, f"no task with id {task_id}"))
    hint = (
        "it is already running: user code has started and cannot be interrupted"
        if status == TaskStatus.RUNNING
        else "it has already finished"
    )
    return Err(
        BrokerError(
            BrokerErrorCode.INVALID_STATE,
            f"task {task_id} is {status} and cannot be cancelled: {hint}",
        )
    )
