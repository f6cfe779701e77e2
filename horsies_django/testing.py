"""Helpers for your own test suite: run sent tasks without a worker, and assert what was sent.

`run_pending()` claims and runs every due task in this process, through the same claim, retry
decision and finish statement a worker uses. It works inside the open transaction of a
`django.test.TestCase` (or pytest-django's `db` fixture) as well as in transactional tests.
See docs/testing.md; pytest users get fixtures from `horsies_django.pytest_plugin`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from horsies_django import codec
from horsies_django.conf import horsies_settings
from horsies_django.db import testing_queries
from horsies_django.eager import IN_PROCESS_WORKER_ID, RanTask, lease_s, run_claimed
from horsies_django.handles import TaskHandle
from horsies_django.models import Task
from horsies_django.types import TaskStatus

__all__ = ["RanTask", "SentTask", "assert_sent", "run_pending", "sent_tasks"]

# A safety net for tasks that keep sending themselves: run_pending() stops with an error.
RUN_LIMIT: Final = 10_000

type TaskRef = str | Any  # a task name, or a registered task (anything with `.task_name`)


def task_name_of(task: TaskRef) -> str:
    name = task if isinstance(task, str) else getattr(task, "task_name", None)
    if not isinstance(name, str):
        raise TypeError(f"{task!r} is not a task: pass a @app.task function or its name")
    return name


def run_pending(
    *, task_names: Iterable[TaskRef] | None = None, max_tasks: int | None = None
) -> list[RanTask]:
    """Run every due PENDING task (and those they send) in this process, in claim order.

    `task_names` limits the run to these tasks (names or task functions); `max_tasks` stops
    after that many runs. Tasks scheduled for later, and retries waiting out their backoff,
    are not due and stay PENDING. Returns one `RanTask` per run, in order.
    """
    if max_tasks is not None and (isinstance(max_tasks, bool) or max_tasks < 0):
        raise ValueError(f"max_tasks={max_tasks!r} must be None or an int >= 0")
    settings = horsies_settings()
    names = None if task_names is None else [task_name_of(t) for t in task_names]
    queues = [(q.name, q.priority) for q in settings.queues]
    limit = RUN_LIMIT if max_tasks is None else max_tasks
    ran: list[RanTask] = []
    while len(ran) < limit:
        claimed = testing_queries.claim_next(
            settings.DATABASE_ALIAS,
            queues=queues,
            task_names=names,
            worker_id=IN_PROCESS_WORKER_ID,
            lease_s=lease_s(),
        )
        if claimed is None:
            return ran
        ran.append(run_claimed(settings.DATABASE_ALIAS, claimed))
    if max_tasks is None:
        raise RuntimeError(
            f"run_pending() ran {RUN_LIMIT} tasks and more are due: a task probably sends "
            "itself in a loop; pass max_tasks= to run a bounded number"
        )
    return ran


@dataclass(frozen=True, slots=True)
class SentTask:
    """A task row as a test sees it: its arguments decoded back to Python values."""

    task_id: str
    task_name: str
    queue_name: str
    status: TaskStatus
    kwargs: dict[str, Any]
    priority: int
    sent_at: datetime
    enqueued_at: datetime

    @property
    def handle(self) -> TaskHandle[Any]:
        return TaskHandle(self.task_id, self.task_name)


def sent_tasks(task: TaskRef | None = None) -> list[SentTask]:
    """Every task sent so far (of one task, if given), oldest first, whatever its status."""
    rows = Task.objects.using(horsies_settings().DATABASE_ALIAS).order_by("sent_at", "id")
    if task is not None:
        rows = rows.filter(task_name=task_name_of(task))
    return [
        SentTask(
            task_id=str(row.id),
            task_name=row.task_name,
            queue_name=row.queue_name,
            status=TaskStatus(row.status),
            kwargs=codec.decode(row.kwargs),
            priority=row.priority,
            sent_at=row.sent_at,
            enqueued_at=row.enqueued_at,
        )
        for row in rows
    ]


def assert_sent(task: TaskRef, count: int | None = None, **kwargs_subset: Any) -> list[SentTask]:
    """Assert `task` was sent with arguments including `kwargs_subset`; return those sends.

    With `count`, exactly that many matching sends are expected (0 asserts "never sent");
    without it, at least one. Values compare with `==` after decoding, so pydantic models and
    dataclasses compare by value.
    """
    name = task_name_of(task)
    sent = sent_tasks(name)
    matching = [s for s in sent if _includes(s.kwargs, kwargs_subset)]
    if (count is None and matching) or len(matching) == count:
        return matching
    wanted = "at least 1" if count is None else str(count)
    shown = "\n".join(f"  {s.task_name}({_args(s.kwargs)}) [{s.status}]" for s in sent) or "  none"
    raise AssertionError(
        f"expected {wanted} send(s) of {name}({_args(kwargs_subset)}), found {len(matching)}; "
        f"sends of {name}:\n{shown}"
    )


def _includes(kwargs: dict[str, Any], subset: dict[str, Any]) -> bool:
    return all(key in kwargs and kwargs[key] == value for key, value in subset.items())


def _args(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
