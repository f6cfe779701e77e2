"""Functions of Django's own task API (`django.tasks`), run by horsies_django's worker.

Plain `django.tasks` code, nothing of horsies_django: the backend named in TASKS decides where
they are stored and run (tests/test_django_tasks_backend.py).
"""

from __future__ import annotations

import os
import time
from typing import Any

from django.tasks import TaskContext, task


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs, "pid": os.getpid()}


@task
async def add_async(a: int, b: int) -> int:
    return a + b


@task(takes_context=True)
def attempt_number(context: TaskContext[Any, Any], succeed_on: int) -> dict[str, Any]:
    """Fails until attempt `succeed_on`; returns what its context says."""
    if context.attempt < succeed_on:
        raise RuntimeError(f"attempt {context.attempt} fails on purpose")
    return {
        "attempt": context.attempt,
        "id": context.task_result.id,
        "args": context.task_result.args,
        "kwargs": context.task_result.kwargs,
    }


class PaymentDeclinedError(Exception):
    pass


@task
def decline(reason: str) -> None:
    raise PaymentDeclinedError(reason)


@task
def returns_an_object() -> Any:
    return object()  # not JSON


@task
def sleep(seconds: float) -> float:
    time.sleep(seconds)  # the task's own work: a timeout stops it
    return seconds


not_a_task = "a module attribute that is not a Task"
