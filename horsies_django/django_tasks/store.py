"""`django.tasks` tasks in the task table: enqueue one, read one back as Django's `TaskResult`.

Used by `horsies_django.backends.HorsiesBackend` (so this module may import `django.tasks`). A
task is stored as an ordinary row: name `django.tasks:<module path>`, arguments
`{"args": [...], "kwargs": {...}}`, our priority mapped from Django's, eligible at
`run_after`, and the backend's `OPTIONS` (retry policy, timeout) snapshotted into the row like
a registered task's, with what rebuilds the `Task` (`options["django_task"]`).

Statuses map to Django's: PENDING -> READY, CLAIMED / RUNNING -> RUNNING, COMPLETED ->
SUCCESSFUL, FAILED / CANCELLED / EXPIRED -> FAILED. `errors` has one entry per failed attempt,
oldest first (the exception's class and traceback, or `TaskFailedError` with the error code and
message for a timeout, a crash or a task the worker could not import), plus one for a task
cancelled or expired; `worker_ids` one per attempt, the running one included.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Final

from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.exceptions import TaskResultDoesNotExist
from django.utils.module_loading import import_string
from pydantic import BaseModel, ConfigDict, Field
from uuid_utils.compat import uuid7

from horsies_django import canonical, codec
from horsies_django.conf import horsies_settings
from horsies_django.db import django_tasks_queries as queries
from horsies_django.definitions import MIN_TIMEOUT_MS
from horsies_django.django_tasks.names import module_path_of, task_name_for
from horsies_django.django_tasks.running import class_path
from horsies_django.exceptions import EncodingError, TaskFailedError
from horsies_django.retry import RetryPolicy
from horsies_django.states import TASK_ACTIVE_STATES, TaskStatus
from horsies_django.types import AttemptOutcome

STATUSES: Final = {
    TaskStatus.PENDING: TaskResultStatus.READY,
    TaskStatus.CLAIMED: TaskResultStatus.RUNNING,
    TaskStatus.RUNNING: TaskResultStatus.RUNNING,
    TaskStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
    TaskStatus.FAILED: TaskResultStatus.FAILED,
    TaskStatus.CANCELLED: TaskResultStatus.FAILED,
    TaskStatus.EXPIRED: TaskResultStatus.FAILED,
}
# An exception's class path at the start of a failed attempt's message (see `running`).
_CLASS_PATH: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
NO_EXCEPTION: Final = class_path(TaskFailedError)


class BackendOptions(BaseModel):
    """The `OPTIONS` of a `HorsiesBackend` in `TASKS`: defaults for every task it enqueues.

    `RETRY_POLICY`: a `RetryPolicy` (or its fields as a dict); an exception's error code is
    HORSIES['EXCEPTION_MAPPER']'s for its class, else HORSIES['DEFAULT_UNHANDLED_ERROR_CODE']
    (`UNHANDLED_EXCEPTION`), so `auto_retry_for=["UNHANDLED_EXCEPTION"]` retries any exception.
    `TIMEOUT_MS`: the longest an attempt may run (>= 1000), as `@app.task(timeout_ms=...)`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    RETRY_POLICY: RetryPolicy | None = None
    TIMEOUT_MS: Annotated[int | None, Field(ge=MIN_TIMEOUT_MS, strict=True)] = None

    @property
    def max_retries(self) -> int:
        return self.RETRY_POLICY.max_retries if self.RETRY_POLICY else 0

    def snapshot(self, task: Task[..., Any], backend_alias: str) -> dict[str, Any]:
        """The row's `options`: what it runs with, and what rebuilds its `Task`."""
        run_after = None if task.run_after is None else task.run_after.isoformat()
        return {
            "retry_policy": self.RETRY_POLICY.to_stored() if self.RETRY_POLICY else None,
            "timeout_ms": self.TIMEOUT_MS,
            "module": task.func.__module__,
            "django_task": {
                "backend": backend_alias,
                "priority": task.priority,
                "queue_name": task.queue_name,
                "run_after": run_after,
            },
        }


def horsies_priority(priority: int) -> int:
    """Django's priority (-100..100, higher first) as ours (1..100, lower first; 0 -> 50)."""
    return 50 - (priority * 99) // 200


# --------------------------------------------------------------------------- enqueueing


def enqueue[**P, R](
    task: Task[P, R],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    *,
    backend_alias: str,
    options: BackendOptions,
) -> TaskResult[P, R]:
    """Insert the task on the caller's connection (in its transaction); its READY result.

    Arguments are normalised by Django's `TaskResult` (`TypeError` for what is not JSON), then
    checked by the codec like a send's: `EncodingError` (a `ValueError`) for what `jsonb` would
    not keep or what is over HORSIES['MAX_PAYLOAD_BYTES']."""
    result = TaskResult(
        task=task,
        id=str(uuid7()),
        status=TaskResultStatus.READY,
        enqueued_at=None,
        started_at=None,
        last_attempted_at=None,
        finished_at=None,
        args=list(args),
        kwargs=kwargs,
        backend=backend_alias,
        errors=[],
        worker_ids=[],
    )
    settings = horsies_settings()
    name = task_name_for(task.module_path)
    try:
        kwargs_json = codec.encode_arguments(
            {"args": result.args, "kwargs": result.kwargs}, settings.MAX_PAYLOAD_BYTES
        )
    except EncodingError as exc:
        raise EncodingError(f"{task.module_path}: argument {exc}", path=exc.path) from exc
    priority = horsies_priority(task.priority)
    row = queries.NewDjangoTask(
        task_id=result.id,
        task_name=name,
        queue_name=task.queue_name,
        priority=priority,
        kwargs_json=kwargs_json,
        run_after=task.run_after,
        timeout_ms=options.TIMEOUT_MS,
        max_retries=options.max_retries,
        options_json=codec.dumps(options.snapshot(task, backend_alias)),
        enqueue_sha=canonical.enqueue_sha(
            task_id=result.id,
            task_name=name,
            queue_name=task.queue_name,
            priority=priority,
            kwargs_json=kwargs_json,
            delay_ms=None,
            good_until=None,
        ),
    )
    sent_at = queries.insert_django_task(settings.DATABASE_ALIAS, row)
    object.__setattr__(result, "enqueued_at", sent_at)
    return result


# --------------------------------------------------------------------------- reading


def get_result(result_id: str) -> TaskResult[..., Any]:
    """The task `result_id` as Django's `TaskResult`; `TaskResultDoesNotExist` when there is no
    such `django.tasks` task (a task of `@app.task` is not one)."""
    try:
        task_id = str(uuid.UUID(str(result_id)))  # checked here: a bad uuid would break the
    except ValueError:  # caller's transaction in the database
        raise TaskResultDoesNotExist(result_id) from None
    alias = horsies_settings().DATABASE_ALIAS
    row = queries.fetch_django_task(alias, task_id)
    module_path = None if row is None else module_path_of(row.task_name)
    if row is None or module_path is None:
        raise TaskResultDoesNotExist(result_id)
    status = TaskStatus(row.status)
    ran = row.retry_count > 0 or status in (TaskStatus.COMPLETED, TaskStatus.FAILED)
    attempts = queries.fetch_attempt_details(alias, task_id) if ran else []
    return _result(task_id, module_path, row, attempts)


def _result(
    result_id: str,
    module_path: str,
    row: queries.DjangoTaskRow,
    attempts: list[queries.AttemptDetail],
) -> TaskResult[..., Any]:
    status = TaskStatus(row.status)
    options = codec.loads(row.options_json)
    arguments = codec.loads(row.kwargs_json)
    worker_ids = [a.worker_id or "" for a in attempts]
    last_attempted_at = attempts[-1].started_at if attempts else None
    if status in TASK_ACTIVE_STATES:
        worker_ids.append(row.claimed_by or "")
        last_attempted_at = row.started_at
    errors = [_error(a) for a in attempts if a.outcome != AttemptOutcome.COMPLETED]
    if status in (TaskStatus.CANCELLED, TaskStatus.EXPIRED):
        errors.append(_no_exception(row.error_code, row.failed_reason))
    result = TaskResult(
        task=_task(module_path, options.get("django_task") or {}),
        id=result_id,
        status=STATUSES[status],
        enqueued_at=row.sent_at,
        started_at=attempts[0].started_at if attempts else row.started_at,
        last_attempted_at=last_attempted_at,
        finished_at=row.finished_at if status.is_terminal else None,
        args=arguments["args"],
        kwargs=arguments["kwargs"],
        backend=(options.get("django_task") or {}).get("backend", ""),
        errors=errors,
        worker_ids=worker_ids,
    )
    if status == TaskStatus.COMPLETED and row.result_json is not None:
        object.__setattr__(result, "_return_value", codec.loads(row.result_json)["ok"])
    return result


def _task(module_path: str, stored: dict[str, Any]) -> Task[..., Any]:
    """The `Task` as it was enqueued: the function's, with the priority, queue, `run_after`
    and backend of the enqueue."""
    try:
        task = import_string(module_path)
    except ImportError as exc:
        raise ValueError(
            f"the django.tasks task {module_path} cannot be imported here: {exc}"
        ) from exc
    if not isinstance(task, Task):
        raise ValueError(f"{module_path} is a {type(task).__name__}, not a django.tasks Task")
    run_after = stored.get("run_after")
    return task.using(
        priority=stored.get("priority"),
        queue_name=stored.get("queue_name"),
        run_after=None if run_after is None else datetime.fromisoformat(run_after),
        backend=stored.get("backend"),
    )


def _error(attempt: queries.AttemptDetail) -> TaskError:
    """A failed attempt: the exception's class path and traceback when one was raised."""
    if attempt.traceback:
        head, sep, _ = (attempt.error_message or "").partition(": ")
        if sep and _CLASS_PATH.fullmatch(head):
            return TaskError(exception_class_path=head, traceback=attempt.traceback)
    return _no_exception(attempt.error_code, attempt.error_message)


def _no_exception(code: str | None, message: str | None) -> TaskError:
    return TaskError(exception_class_path=NO_EXCEPTION, traceback=f"{code}: {message}")
