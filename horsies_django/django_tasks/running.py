"""Running a `django.tasks` task: what a worker child does with a row named `django.tasks:...`.

The function's `Task` is imported by its module path and called with the stored arguments (a
`TaskContext` first when it `takes_context`); how it ended is an `Outcome`, as
`execution.run_task` gives for a registered task, so the worker records it, retries it and times
it out the same way. An exception is recorded with the message `<exception class path>: <text>`
and its traceback (`store` reads the class back from that message for `TaskResult.errors`); the
return value is stored as `{"ok": value}` once `normalize_json` (Django's rule) and the codec's
(what `jsonb` keeps) accept it. Django's `task_started` and `task_finished` signals are sent
around the call. Never touches the database.

`django.tasks` is imported when the first such task runs, so this module loads on Django 5.2.
"""

from __future__ import annotations

import traceback as tb
from typing import TYPE_CHECKING, Any

from horsies_django import codec
from horsies_django.conf import MAX_JSONB_BYTES, horsies_settings
from horsies_django.django_tasks.names import is_django_task as is_django_task
from horsies_django.django_tasks.names import module_path_of
from horsies_django.exceptions import TaskFailedError
from horsies_django.execution import Outcome, failure, now, settings_error_code
from horsies_django.types import ContractCode, OperationalErrorCode, TaskResult

if TYPE_CHECKING:
    from django.tasks import Task
    from django.tasks import TaskResult as DjangoTaskResult


def run(task_name: str, kwargs_json: str, *, task_id: str, attempt: int) -> Outcome:
    """Run the `django.tasks` task a row names; the `Outcome` of attempt number `attempt`."""
    from django.tasks import TaskResult as DjangoTaskResult
    from django.tasks import TaskResultStatus

    started = now()
    module_path = module_path_of(task_name) or task_name
    task = _import_task(module_path)
    if isinstance(task, str):
        return failure(OperationalErrorCode.WORKER_RESOLUTION_ERROR, task, started_at=started)
    arguments = _arguments(kwargs_json)
    if arguments is None:
        return failure(
            ContractCode.PYDANTIC_HYDRATION_ERROR,
            f"arguments of {module_path} are not {{'args': [...], 'kwargs': {{...}}}}: "
            f"{kwargs_json:.200}",
            started_at=started,
        )
    args, kwargs = arguments
    result = DjangoTaskResult(
        task=task,
        id=task_id,
        status=TaskResultStatus.RUNNING,
        enqueued_at=None,
        started_at=started,
        last_attempted_at=started,
        finished_at=None,
        args=args,
        kwargs=kwargs,
        backend=task.backend,
        errors=[],
        # One entry per attempt (the context's `attempt` counts them); the workers of earlier
        # attempts are not known here: `context.task_result.refresh()` reads them.
        worker_ids=[""] * attempt,
    )
    _signal("task_started", task, result)
    try:
        returned = _call(task, result, args, kwargs)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        outcome = raised(exc, settings_error_code(exc), started)
        _finished(task, result, outcome)  # in the handler: Django's log shows exc_info
        return outcome
    outcome = _stored(module_path, returned, started)
    _finished(task, result, outcome)
    return outcome


def _import_task(module_path: str) -> Task[..., Any] | str:
    """The `Task` at `module_path`, or why this worker cannot run it."""
    from django.tasks import Task
    from django.utils.module_loading import import_string

    try:
        task = import_string(module_path)
    except Exception as exc:  # ImportError, or the module itself raising while it imports
        return (
            f"the django.tasks task {module_path} cannot be imported in this worker "
            f"({type(exc).__name__}: {_text(exc)}); deploy the code that defines it"
        )
    if not isinstance(task, Task):
        return (
            f"{module_path} is a {type(task).__name__}, not a django.tasks Task: decorate the "
            "function with @django.tasks.task"
        )
    return task


def _arguments(kwargs_json: str) -> tuple[list[Any], dict[str, Any]] | None:
    try:
        stored = codec.loads(kwargs_json)
        args, kwargs = stored["args"], stored["kwargs"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return None
    return args, kwargs


def _call(
    task: Task[..., Any], result: DjangoTaskResult[..., Any], args: list[Any], kw: dict[str, Any]
) -> Any:
    if task.takes_context:
        from django.tasks import TaskContext

        return task.call(TaskContext(task_result=result), *args, **kw)
    return task.call(*args, **kw)


def _stored(module_path: str, returned: Any, started: Any) -> Outcome:
    """A success whose value is stored as JSON, or the failure to store it."""
    from django.utils.json import normalize_json

    limit = horsies_settings().MAX_RESULT_BYTES
    try:
        result_json = codec.encode_result(TaskResult(ok=normalize_json(returned)), limit)
    except codec.TooLargeError as exc:
        return failure(
            OperationalErrorCode.RESULT_TOO_LARGE,
            f"{module_path} returned {exc.size_text} of JSON, over the limit of "
            f"HORSIES['MAX_RESULT_BYTES'] = {limit:,} bytes; store large data elsewhere and "
            f"return a reference to it, or raise HORSIES['MAX_RESULT_BYTES'] (at most "
            f"{MAX_JSONB_BYTES:,})",
            started_at=started,
        )
    except Exception as exc:  # not JSON (normalize_json's TypeError), or not what jsonb keeps
        return raised(exc, OperationalErrorCode.WORKER_SERIALIZATION_ERROR, started)
    return Outcome(
        ok=True,
        result_json=result_json,
        error_code=None,
        message=None,
        traceback=None,
        started_at=started,
        finished_at=now(),
    )


def raised(exc: BaseException, code: str, started: Any) -> Outcome:
    """A failure caused by `exc`: message `<class path>: <text>`, with its traceback."""
    path = class_path(type(exc))
    text = _text(exc)
    return failure(
        code,
        f"{path}: {text}",
        started_at=started,
        traceback="".join(tb.format_exception(exc)),
        exception={"type": path, "message": text},
    )


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ raises
        return f"<unprintable {type(exc).__name__}>"


def _finished(task: Task[..., Any], result: DjangoTaskResult[..., Any], outcome: Outcome) -> None:
    """Fill `result` as the attempt ended and send `task_finished` (its log shows exc_info)."""
    from django.tasks import TaskResultStatus
    from django.tasks.base import TaskError as DjangoTaskError

    object.__setattr__(result, "finished_at", outcome.finished_at)
    stored = codec.loads(outcome.result_json)
    if outcome.ok:
        object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
        object.__setattr__(result, "_return_value", stored["ok"])
    else:
        object.__setattr__(result, "status", TaskResultStatus.FAILED)
        exception = stored["err"].get("exception") or {}
        result.errors.append(
            DjangoTaskError(
                exception_class_path=exception.get("type") or class_path(TaskFailedError),
                traceback=outcome.traceback or f"{outcome.error_code}: {outcome.message}",
            )
        )
    _signal("task_finished", task, result)


def _signal(name: str, task: Task[..., Any], result: DjangoTaskResult[..., Any]) -> None:
    """Send Django's `task_started` / `task_finished`; a receiver's error never fails the task."""
    from django.tasks import signals

    try:
        sender = type(task.get_backend())
    except Exception:  # the task's backend alias is not in this worker's TASKS
        return
    getattr(signals, name).send_robust(sender, task_result=result)
