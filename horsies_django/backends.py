"""horsies_django as a backend of Django's own task API, `django.tasks` (Django 6.0+).

```
TASKS = {
    "default": {
        "BACKEND": "horsies_django.backends.HorsiesBackend",
        "QUEUES": ["default"],  # optional: every queue of HORSIES when left out
        "OPTIONS": {"RETRY_POLICY": {...}, "TIMEOUT_MS": 30_000},  # optional
    }
}
```

Functions decorated with `django.tasks.task` are enqueued into horsies_django's task table (in
the caller's transaction), run by `manage.py horsies_worker` and read back as Django's
`TaskResult`; `run_after`, priorities, async functions and `get_result()` are supported. Queue
names must be queues of `settings.HORSIES` (and of `QUEUES` when given). With
HORSIES['EAGER'], `enqueue()` runs the task at once and returns its finished result.

System checks: `horsies_django.E101` horsies_django not in INSTALLED_APPS · `E102` invalid
`OPTIONS` · `E103` a name of `QUEUES` that is not a queue of HORSIES.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error
from django.tasks import Task, TaskResult
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend
from django.tasks.signals import task_enqueued
from pydantic import ValidationError

from horsies_django import eager
from horsies_django.conf import horsies_settings
from horsies_django.definitions import queue_problem
from horsies_django.django_tasks import store
from horsies_django.django_tasks.names import MAX_TASK_NAME_CHARS, task_name_for
from horsies_django.exceptions import ConfigurationError


class HorsiesBackend(BaseTaskBackend):
    """`django.tasks` tasks stored, run and retried by horsies_django."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        if "QUEUES" not in params:
            self.queues = set()  # no list of its own: the queues of HORSIES decide
        self.options_problem: str | None = None
        self.horsies_options = store.BackendOptions()
        try:
            self.horsies_options = store.BackendOptions.model_validate(self.options)
        except ValidationError as exc:
            self.options_problem = _validation_text(exc)

    def validate_task(self, task: Task[..., Any]) -> None:
        super().validate_task(task)
        problem = _queue_problem(task.queue_name)
        if problem is not None:
            raise InvalidTask(f"Queue '{task.queue_name}' is not valid for backend: {problem}")
        if len(task_name_for(task.module_path)) > MAX_TASK_NAME_CHARS:
            raise InvalidTask(
                f"{task.module_path} is too long a module path for horsies_django: with its "
                f"prefix, at most {MAX_TASK_NAME_CHARS} characters"
            )

    def enqueue[**P, R](
        self, task: Task[P, R], args: Sequence[Any], kwargs: dict[str, Any]
    ) -> TaskResult[P, R]:
        self.validate_task(task)
        if self.options_problem is not None:
            raise InvalidTaskBackend(
                f"TASKS[{self.alias!r}]['OPTIONS'] is invalid: {self.options_problem}"
            )
        result = store.enqueue(
            task, args, kwargs, backend_alias=self.alias, options=self.horsies_options
        )
        task_enqueued.send(type(self), task_result=result)
        if eager.enabled():
            eager.run_all_sent([result.id])
            result.refresh()
        return result

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        return store.get_result(result_id)

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        messages: list[CheckMessage] = list(super().check(**kwargs))
        where = f"TASKS[{self.alias!r}]"
        if not apps.is_installed("horsies_django"):
            messages.append(
                Error(
                    f"{where} uses HorsiesBackend, but horsies_django is not in INSTALLED_APPS.",
                    hint="Add 'horsies_django' to INSTALLED_APPS (its tables hold the tasks).",
                    id="horsies_django.E101",
                )
            )
        if self.options_problem is not None:
            messages.append(
                Error(
                    f"{where}['OPTIONS'] is invalid: {self.options_problem}",
                    hint="OPTIONS takes RETRY_POLICY (a RetryPolicy or its fields as a dict) "
                    "and TIMEOUT_MS (an int >= 1000); see docs/django-tasks.md.",
                    id="horsies_django.E102",
                )
            )
        for name in sorted(self.queues):
            problem = _queue_problem(name)
            if problem is not None:
                messages.append(
                    Error(
                        f"{where}['QUEUES'] names {name!r}: {problem}",
                        hint="List queues of HORSIES (QUEUE_MODE, CUSTOM_QUEUES), or leave "
                        "QUEUES out to allow all of them.",
                        id="horsies_django.E103",
                    )
                )
        return messages


def _queue_problem(queue_name: str) -> str | None:
    """Why `queue_name` is not a queue of HORSIES (None when it is, or when HORSIES itself is
    invalid: its own checks report that)."""
    try:
        settings = horsies_settings()
    except ConfigurationError:
        return None
    return queue_problem(queue_name, settings)


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'OPTIONS'}: {error['msg']}"
        for error in exc.errors()
    )
