"""Operator actions on tasks: cancel, re-enqueue, run now.

Each one is guarded by its own permission, asks for confirmation on a page that lists what it
will touch, and goes through the same service as the public API (`cancelling.cancel`,
`operations.reenqueue`, `operations.run_now`): the admin never writes a status itself.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Final

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from horsies_django import cancelling, operations
from horsies_django.admin import confirmed
from horsies_django.admin.common import admin_url, short_id
from horsies_django.models import Task
from horsies_django.states import CANCELLABLE_STATES, REENQUEUABLE_STATES, RUN_NOW_STATES, in_order
from horsies_django.types import BrokerError, Err, Result

MAX_BATCH: Final = confirmed.MAX_BATCH

type TaskAction = confirmed.Guarded[Task, Callable[[str], Result[Any, BrokerError]]]


# The previews below judge each row by the same sets as the services that do the work.


def _cancellable(task: Task) -> str | None:
    return None if task.status in CANCELLABLE_STATES else f"{task.status}: already started"


def _reenqueuable(task: Task) -> str | None:
    if task.status in REENQUEUABLE_STATES:
        return None
    allowed = "/".join(in_order(REENQUEUABLE_STATES))
    return f"{task.status}: only {allowed} tasks can be re-enqueued"


def _waiting(task: Task) -> str | None:
    if task.status not in RUN_NOW_STATES:
        return f"{task.status}: only {'/'.join(in_order(RUN_NOW_STATES))} tasks can be run now"
    if task.enqueued_at <= timezone.now():
        return "already eligible to run"
    return None


def _cancel(task_id: str) -> Result[Any, BrokerError]:
    return cancelling.cancel(task_id, "cancelled in the admin")


ACTIONS: Final = {
    a.name: a
    for a in (
        confirmed.Guarded(
            "cancel_tasks", "cancel_task", "Cancel", "Cancelled", _cancellable, _cancel
        ),
        confirmed.Guarded(
            "reenqueue_tasks",
            "reenqueue_task",
            "Re-enqueue",
            "Re-enqueued",
            _reenqueuable,
            operations.reenqueue,
        ),
        confirmed.Guarded(
            "run_tasks_now",
            "run_task_now",
            "Run now",
            "Brought forward",
            _waiting,
            operations.run_now,
        ),
    )
}


def require_permission(request: HttpRequest) -> None:
    """403 when a POST names an action the user may not run (a forged or stale form)."""
    confirmed.require_permission(ACTIONS, request)


def perform(
    model_admin: admin.ModelAdmin[Task],
    request: HttpRequest,
    queryset: QuerySet[Task],
    action: TaskAction,
) -> TemplateResponse | None:
    """Show the confirmation page, or (after confirmation) run the service on each task."""
    tasks = confirmed.batch(
        model_admin, request, queryset, action, newest_first="-sent_at", noun="task"
    )
    if tasks is None:
        return None
    if request.POST.get("post") != "yes":
        rows = [(t, t.task_name, action.applies(t)) for t in tasks]
        return confirmed.confirmation(model_admin, request, rows, action, "task")
    outcomes = [(str(t.pk), action.service(str(t.pk))) for t in tasks]
    _report(model_admin, request, action, outcomes)
    return None


def _report(
    model_admin: admin.ModelAdmin[Task],
    request: HttpRequest,
    action: TaskAction,
    outcomes: Iterable[tuple[str, Result[Any, BrokerError]]],
) -> None:
    done = 0
    created: list[str] = []
    skipped: Counter[str] = Counter()
    for task_id, result in outcomes:
        if isinstance(result, Err):
            skipped[_reason(result.error.message, task_id)] += 1
            continue
        done += 1
        new_id = getattr(result.value, "task_id", None)
        if new_id:
            created.append(str(new_id))
    noun = "task" if done == 1 else "tasks"
    text = format_html("{} {} {}.", action.done, done, noun)
    if created:
        links = format_html_join(
            ", ", '<a href="{}">{}</a>', ((admin_url("task", i), short_id(i)) for i in created[:20])
        )
        text = format_html("{} New: {}", text, links)
    model_admin.message_user(request, text, messages.SUCCESS if done else messages.WARNING)
    confirmed.report_skipped(model_admin, request, skipped)


def _reason(message: str, task_id: str) -> str:
    """The message without its task id, so equal reasons group together."""
    text = re.sub(rf"task {re.escape(task_id)}\b", "task", message)
    return text.replace(task_id, "…")
