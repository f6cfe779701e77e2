"""The task registry: the `@app.task` decorator and discovery of task modules.

Task modules are imported in `AppConfig.ready()`, with sends suppressed while they import;
a task name maps to exactly one function in a process (the table is `registered.table`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.apps import apps

from horsies_django import checks, sending  # noqa: F401  (checks: E013 even when not installed)
from horsies_django.conf import horsies_settings
from horsies_django.definitions import TaskDefinition, build_definition
from horsies_django.exceptions import TaskDefinitionError
from horsies_django.execution import call_directly
from horsies_django.handles import TaskHandle
from horsies_django.registered import TaskTable, suppress_sends, suppressed, table
from horsies_django.retry import RetryPolicy
from horsies_django.schedules.declared import DEFAULT_MAX_CATCH_UP, Schedule, declare
from horsies_django.schedules.patterns import Pattern
from horsies_django.states import OnError
from horsies_django.types import TaskError, TaskResult, TaskSendOptions, TaskSendResult

if TYPE_CHECKING:
    from horsies_django.workflows.spec import Node, NodeRef, SuccessPolicy, TaskNode, WorkflowSpec

logger = logging.getLogger("horsies_django.registry")


class TaskFunction[**P, T]:
    """A registered task: call it to run in-process, or `.send()` it to a worker."""

    def __init__(self, definition: TaskDefinition) -> None:
        self.definition = definition
        self.__wrapped__ = definition.fn
        self.__doc__ = definition.fn.__doc__
        self.__name__ = getattr(definition.fn, "__name__", definition.name)
        self.__module__ = definition.fn.__module__
        self.__qualname__ = getattr(definition.fn, "__qualname__", self.__name__)

    def __repr__(self) -> str:
        return f"<task {self.definition.name!r} queue={self.definition.queue_name!r}>"

    @property
    def task_name(self) -> str:
        return self.definition.name

    @property
    def queue_name(self) -> str:
        return self.definition.queue_name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[T, TaskError]:
        """Run the function here and now, judged as a worker run: exceptions mapped to errors,
        the returned value checked. No queue, no retries, no persistence."""
        return call_directly(self.definition, args, kwargs)

    def send(self, *args: P.args, **kwargs: P.kwargs) -> TaskSendResult[TaskHandle[T]]:
        """Enqueue for immediate execution."""
        if args:  # refused as BoundSend refuses them
            return self.with_options(TaskSendOptions()).send(*args, **kwargs)
        return sending.send(self.definition, kwargs)

    async def send_async(self, *args: P.args, **kwargs: P.kwargs) -> TaskSendResult[TaskHandle[T]]:
        """`send()` for async code (runs the insert off the event loop)."""
        return await self.with_options(TaskSendOptions()).send_async(*args, **kwargs)

    def schedule(
        self, delay_seconds: float, *args: P.args, **kwargs: P.kwargs
    ) -> TaskSendResult[TaskHandle[T]]:
        """Enqueue to become claimable after `delay_seconds`."""
        return self.with_options(TaskSendOptions()).schedule(delay_seconds, *args, **kwargs)

    def send_many(
        self, kwargs_list: Sequence[Mapping[str, Any]], options: TaskSendOptions | None = None
    ) -> list[TaskSendResult[TaskHandle[T]]]:
        """Enqueue many tasks with one INSERT; returns one Result per item, in order."""
        return sending.send_many(self.definition, kwargs_list, options=options)

    def with_options(self, options: TaskSendOptions) -> BoundSend[P, T]:
        """Bind per-send options (`good_until`, `priority`)."""
        return BoundSend(self.definition, options)

    async def schedule_async(
        self, delay_seconds: float, *args: P.args, **kwargs: P.kwargs
    ) -> TaskSendResult[TaskHandle[T]]:
        """`schedule()` for async code (runs the insert off the event loop)."""
        return await self.with_options(TaskSendOptions()).schedule_async(
            delay_seconds, *args, **kwargs
        )

    def retry_send(self, error: object) -> TaskSendResult[TaskHandle[T]]:
        """Resend the exact payload of an ENQUEUE_FAILED or ASYNC_CONTEXT error."""
        return sending.replay(self.definition, error, scheduled=False)

    async def retry_send_async(self, error: object) -> TaskSendResult[TaskHandle[T]]:
        """`retry_send()` for async code: the way to send an ASYNC_CONTEXT error's payload."""
        return await sync_to_async(self.retry_send, thread_sensitive=True)(error)

    def retry_schedule(self, error: object) -> TaskSendResult[TaskHandle[T]]:
        """Resend the exact payload of an ENQUEUE_FAILED or ASYNC_CONTEXT error from
        `schedule()`."""
        return sending.replay(self.definition, error, scheduled=True)

    async def retry_schedule_async(self, error: object) -> TaskSendResult[TaskHandle[T]]:
        """`retry_schedule()` for async code."""
        return await sync_to_async(self.retry_schedule, thread_sensitive=True)(error)

    def node(
        self,
        *,
        waits_for: Sequence[Node] = (),
        args_from: Mapping[str, Node] | None = None,
        workflow_ctx_from: Sequence[Node] = (),
        queue: str | None = None,
        priority: int | None = None,
        allow_failed_deps: bool = False,
        join: str = "all",
        min_success: int | None = None,
        good_until: datetime | None = None,
        node_id: str | None = None,
    ) -> Callable[..., TaskNode[T]]:
        """A workflow node of this task: `task.node(waits_for=[a])(x=1, prev=from_node(a))`.

        The returned callable takes the task's kwargs, keyword only; rules are checked when the
        workflow is built (`app.workflow(...)` or `WorkflowDefinition.build()`)."""

        def make(**kwargs: Any) -> TaskNode[T]:
            from horsies_django.workflows.spec import task_node

            return task_node(
                self.definition,
                kwargs,
                waits_for=waits_for,
                args_from=args_from,
                workflow_ctx_from=workflow_ctx_from,
                queue=queue,
                priority=priority,
                allow_failed_deps=allow_failed_deps,
                join=join,
                min_success=min_success,
                good_until=good_until,
                node_id=node_id,
            )

        return make


class BoundSend[**P, T]:
    """A task with per-send options bound; see `TaskFunction.with_options`."""

    def __init__(self, definition: TaskDefinition, options: TaskSendOptions) -> None:
        self.definition = definition
        self.options = options

    def _reject_positional(self, args: tuple[Any, ...]) -> TaskSendResult[TaskHandle[T]] | None:
        if not args:
            return None
        return sending.invalid(
            f"{self.definition.name}: got {len(args)} positional argument(s); "
            "task arguments are keyword-only, e.g. .send(order_id=1)"
        )

    def send(self, *args: P.args, **kwargs: P.kwargs) -> TaskSendResult[TaskHandle[T]]:
        return self._reject_positional(args) or sending.send(
            self.definition, kwargs, options=self.options
        )

    async def send_async(self, *args: P.args, **kwargs: P.kwargs) -> TaskSendResult[TaskHandle[T]]:
        if suppressed():
            return sending.suppressed_error(self.definition)
        return await sync_to_async(self.send, thread_sensitive=True)(*args, **kwargs)

    def schedule(
        self, delay_seconds: float, *args: P.args, **kwargs: P.kwargs
    ) -> TaskSendResult[TaskHandle[T]]:
        return self._reject_positional(args) or sending.send(
            self.definition, kwargs, delay_seconds=delay_seconds, options=self.options
        )

    async def schedule_async(
        self, delay_seconds: float, *args: P.args, **kwargs: P.kwargs
    ) -> TaskSendResult[TaskHandle[T]]:
        if suppressed():
            return sending.suppressed_error(self.definition)
        return await sync_to_async(self.schedule, thread_sensitive=True)(
            delay_seconds, *args, **kwargs
        )


class Registry:
    """Process-wide registry of tasks (exported as `horsies_django.app`) over a `TaskTable`."""

    def __init__(self, tasks: TaskTable) -> None:
        self.tasks = tasks

    @property
    def definitions(self) -> dict[str, TaskDefinition]:
        return self.tasks.definitions

    @property
    def discovered(self) -> bool:
        return self.tasks.discovered

    def task[**P, T](
        self,
        task_name: str,
        *,
        queue_name: str | None = None,
        retry_policy: RetryPolicy | None = None,
        exception_mapper: Mapping[type[BaseException], str] | None = None,
        default_unhandled_error_code: str | None = None,
        timeout_ms: int | None = None,
    ) -> Callable[[Callable[P, TaskResult[T, TaskError]]], TaskFunction[P, T]]:
        """Register a function as a task (every rule is checked here, at import)."""
        if callable(task_name):
            raise TaskDefinitionError(
                '@app.task needs a task name: write @app.task("my_task"), not @app.task'
            )

        def register(fn: Callable[P, TaskResult[T, TaskError]]) -> TaskFunction[P, T]:
            definition = build_definition(
                fn,
                name=task_name,
                settings=horsies_settings(),
                queue_name=queue_name,
                retry_policy=retry_policy,
                exception_mapper=exception_mapper,
                default_unhandled_error_code=default_unhandled_error_code,
                timeout_ms=timeout_ms,
            )
            self.tasks.add(definition)
            return TaskFunction(definition)

        return register

    def get(self, task_name: str) -> TaskDefinition | None:
        return self.tasks.get(task_name)

    def workflow(
        self,
        name: str,
        tasks: Sequence[Node],
        output: NodeRef | None = None,
        on_error: OnError = OnError.FAIL,
        success_policy: SuccessPolicy | None = None,
    ) -> WorkflowSpec:
        """Build a workflow from nodes in index order; raises `WorkflowValidationError` listing
        every problem (node ids default to `<slug of name>:<index>`)."""
        from horsies_django.workflows.validation import build_spec

        return build_spec(
            name,
            [(None, node) for node in tasks],
            output=output,
            on_error=on_error,
            success_policy=success_policy,
        )

    def periodic(
        self,
        name: str,
        *,
        task: TaskFunction[..., Any] | str,
        pattern: Pattern,
        kwargs: Mapping[str, Any] | None = None,
        timezone: str | None = None,
        enabled: bool = True,
        catch_up_missed: bool = False,
        max_catch_up: int = DEFAULT_MAX_CATCH_UP,
    ) -> Schedule:
        """Declare a periodic schedule: `task` runs with `kwargs` at every slot of `pattern`
        (in `timezone`, default `TIME_ZONE`). Call it in a task module; a scheduler
        (`horsies_scheduler`, or `horsies_worker --scheduler`) fires each slot once."""
        return declare(
            Schedule(
                name=name,
                task=task if isinstance(task, str) else task.task_name,
                kwargs=dict(kwargs or {}),
                pattern=pattern,
                timezone=timezone,
                enabled=enabled,
                catch_up_missed=catch_up_missed,
                max_catch_up=max_catch_up,
            )
        )

    def unregister(self, task_name: str) -> None:
        """Forget a task (for tests that register throwaway tasks)."""
        self.tasks.unregister(task_name)


app = Registry(table)
task = app.task


def task_module_names() -> list[str]:
    """`HORSIES['TASK_MODULES']`, or `<app>.tasks` of every installed app that has one."""
    configured = horsies_settings().TASK_MODULES
    if configured is not None:
        return list(configured)
    names = []
    for config in apps.get_app_configs():
        candidate = f"{config.name}.tasks"
        if importlib.util.find_spec(config.name) and _has_submodule(config.name, "tasks"):
            names.append(candidate)
    return names


def _has_submodule(package: str, name: str) -> bool:
    try:
        return importlib.util.find_spec(f"{package}.{name}") is not None
    except ModuleNotFoundError:
        return False


def autodiscover() -> None:
    """Import every task module with sends suppressed (called from AppConfig.ready)."""
    with suppress_sends():
        for module_name in task_module_names():
            try:
                importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                # Reported by the horsies_django.E009 system check, which names the fix.
                logger.error("task module %s cannot be imported: %s", module_name, exc)
    table.discovered = True
