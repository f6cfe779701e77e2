"""Operator actions on tasks: cancel, re-enqueue, run now.

Each one is guarded by its own permission, asks for confirmation on a page that lists what it
will touch, and goes through the same service as the public API (`cancelling.cancel`,
`operations.reenqueue`, `operations.run_now`): the admin never writes a status itself.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from horsies_django import cancelling, operations
from horsies_django.admin.common import admin_url, short_id
from horsies_django.models import Task
from horsies_django.states import CANCELLABLE_STATES, REENQUEUABLE_STATES, RUN_NOW_STATES, in_order
from horsies_django.types import BrokerError, Err, Result

MAX_BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class TaskAction:
    """One action: its permission, what it applies to, and the service that does it."""

    name: str
    codename: str
    title: str
    done: str
    applies: Callable[[Task], str | None]  # None when eligible, else why it will be skipped
    service: Callable[[str], Result[Any, BrokerError]]

    @property
    def permission(self) -> str:
        return f"horsies_django.{self.codename}"

    def allowed(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(self.permission))


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
        TaskAction("cancel_tasks", "cancel_task", "Cancel", "Cancelled", _cancellable, _cancel),
        TaskAction(
            "reenqueue_tasks",
            "reenqueue_task",
            "Re-enqueue",
            "Re-enqueued",
            _reenqueuable,
            operations.reenqueue,
        ),
        TaskAction(
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
    for name in request.POST.getlist("action"):
        action = ACTIONS.get(name)
        if action is not None and not action.allowed(request):
            raise PermissionDenied(f"you need the {action.permission} permission")


def perform(
    model_admin: admin.ModelAdmin[Task],
    request: HttpRequest,
    queryset: QuerySet[Task],
    action: TaskAction,
) -> TemplateResponse | None:
    """Show the confirmation page, or (after confirmation) run the service on each task."""
    if not action.allowed(request):
        raise PermissionDenied(f"you need the {action.permission} permission")
    tasks = list(queryset.order_by("-sent_at")[: MAX_BATCH + 1])
    if len(tasks) > MAX_BATCH:
        model_admin.message_user(
            request,
            f"{action.title} works on at most {MAX_BATCH} tasks at once: narrow the "
            "filter or select fewer tasks.",
            messages.ERROR,
        )
        return None
    if request.POST.get("post") != "yes":
        return _confirmation(model_admin, request, tasks, action)
    outcomes = [(str(t.pk), action.service(str(t.pk))) for t in tasks]
    _report(model_admin, request, action, outcomes)
    return None


def _confirmation(
    model_admin: admin.ModelAdmin[Task],
    request: HttpRequest,
    tasks: list[Task],
    action: TaskAction,
) -> TemplateResponse:
    rows = [(t, action.applies(t)) for t in tasks]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{action.title}: are you sure?",
        "opts": model_admin.opts,
        "action": action,
        "rows": rows,
        "eligible": sum(1 for _, why in rows if why is None),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media,
    }
    return TemplateResponse(request, "admin/horsies_django/task/action_confirmation.html", context)


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
    if skipped:
        total = sum(skipped.values())
        reasons = "; ".join(f"{why} ({n})" for why, n in skipped.most_common())
        model_admin.message_user(request, f"Skipped {total}: {reasons}", messages.WARNING)


def _reason(message: str, task_id: str) -> str:
    """The message without its task id, so equal reasons group together."""
    text = re.sub(rf"task {re.escape(task_id)}\b", "task", message)
    return text.replace(task_id, "…")
