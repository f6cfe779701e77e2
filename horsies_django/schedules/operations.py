"""What an operator does to a schedule (the admin's actions): run its task now, enable or
disable it. Every call returns a value and never raises for an expected failure."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError

from horsies_django import codec, sending
from horsies_django.conf import horsies_settings
from horsies_django.db import schedule_queries
from horsies_django.handles import TaskHandle
from horsies_django.registered import table
from horsies_django.types import BrokerError, BrokerErrorCode, BrokerResult, Err, Ok, TaskSendResult


def run_now(task_name: str, kwargs_json: str) -> TaskSendResult[TaskHandle[Any]]:
    """Send the schedule's task with its kwargs now, outside its slots (a new task id)."""
    definition = table.get(task_name)
    if definition is None:
        return sending.invalid(f"task {task_name} is not registered in this process")
    prepared = sending.prepare(definition, codec.loads(kwargs_json))
    if prepared.is_err():
        return Err(prepared.err_value)
    return sending.enqueue(definition, prepared.ok_value)


def set_enabled(name: str, enabled: bool) -> BrokerResult[bool]:
    """Enable (from the next slot after now) or disable a schedule; Ok(False) if it was so."""
    try:
        return Ok(schedule_queries.set_enabled(horsies_settings().DATABASE_ALIAS, name, enabled))
    except DatabaseError as exc:
        return Err(BrokerError(BrokerErrorCode.BROKER_ERROR, f"could not update {name}: {exc}"))
