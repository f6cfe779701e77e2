"""Operator actions on workflows: cancel, pause, resume.

Each is guarded by its own permission (`cancel_workflow`; `pause_workflow` for pause and
resume), asks for confirmation on a page listing every workflow it will touch, and goes through
`WorkflowHandle`, the public API: the admin never writes a workflow's status itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Final

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from horsies_django.admin import confirmed
from horsies_django.models import Workflow
from horsies_django.states import WORKFLOW_OPEN_STATES, WorkflowStatus
from horsies_django.types import BrokerError, Err, Result
from horsies_django.workflows import WorkflowHandle

MAX_BATCH: Final = confirmed.MAX_BATCH

type WorkflowAction = confirmed.Guarded[
    Workflow, Callable[[WorkflowHandle], Result[bool, BrokerError]]
]


# The previews judge each row by the statuses the engine's functions accept (migration 0008).


def _open(workflow: Workflow) -> str | None:
    return None if workflow.status in WORKFLOW_OPEN_STATES else f"{workflow.status}: it has ended"


def _running(workflow: Workflow) -> str | None:
    if workflow.status == WorkflowStatus.RUNNING:
        return None
    return f"{workflow.status}: only RUNNING workflows can be paused"


def _paused(workflow: Workflow) -> str | None:
    if workflow.status == WorkflowStatus.PAUSED:
        return None
    return f"{workflow.status}: only PAUSED workflows can be resumed"


ACTIONS: Final = {
    a.name: a
    for a in (
        confirmed.Guarded(
            "cancel_workflows",
            "cancel_workflow",
            "Cancel",
            "Cancelled",
            _open,
            WorkflowHandle.cancel,
        ),
        confirmed.Guarded(
            "pause_workflows", "pause_workflow", "Pause", "Paused", _running, WorkflowHandle.pause
        ),
        confirmed.Guarded(
            "resume_workflows",
            "pause_workflow",
            "Resume",
            "Resumed",
            _paused,
            WorkflowHandle.resume,
        ),
    )
}


def require_permission(request: HttpRequest) -> None:
    """403 when a POST names an action the user may not run (a forged or stale form)."""
    confirmed.require_permission(ACTIONS, request)


def perform(
    model_admin: admin.ModelAdmin[Workflow],
    request: HttpRequest,
    queryset: QuerySet[Workflow],
    action: WorkflowAction,
) -> TemplateResponse | None:
    """Show the confirmation page, or (after confirmation) call the handle for each workflow."""
    workflows = confirmed.batch(
        model_admin, request, queryset, action, newest_first="-created_at", noun="workflow"
    )
    if workflows is None:
        return None
    if request.POST.get("post") != "yes":
        rows = [(w, w.name, action.applies(w)) for w in workflows]
        return confirmed.confirmation(model_admin, request, rows, action, "workflow")
    outcomes = [
        (w, action.service(WorkflowHandle(str(w.pk))) if action.applies(w) is None else None)
        for w in workflows
    ]
    _report(model_admin, request, action, outcomes)
    return None


def _report(
    model_admin: admin.ModelAdmin[Workflow],
    request: HttpRequest,
    action: WorkflowAction,
    outcomes: Iterable[tuple[Workflow, Result[bool, BrokerError] | None]],
) -> None:
    """One message for what was done, one grouping the reasons the others were skipped.

    A workflow the preview judged eligible can still end meanwhile: the handle then answers
    Ok(False) and it counts as skipped."""
    done = 0
    skipped: Counter[str] = Counter()
    for workflow, result in outcomes:
        if result is None:
            skipped[action.applies(workflow) or "not eligible"] += 1
        elif isinstance(result, Err):
            skipped[result.error.message.replace(str(workflow.pk), "…")] += 1
        elif result.value:
            done += 1
        else:
            skipped["its status changed meanwhile: nothing to do"] += 1
    noun = "workflow" if done == 1 else "workflows"
    model_admin.message_user(
        request, f"{action.done} {done} {noun}.", messages.SUCCESS if done else messages.WARNING
    )
    confirmed.report_skipped(model_admin, request, skipped)
