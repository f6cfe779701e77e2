"""Operator actions on workflows: cancel, pause, resume.

Each is guarded by its own permission (`cancel_workflow`; `pause_workflow` for pause and
resume), asks for confirmation on a page listing every workflow it will touch, and goes through
`WorkflowHandle`, the public API: the admin never writes a workflow's status itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from horsies_django.models import Workflow
from horsies_django.states import WORKFLOW_OPEN_STATES, WorkflowStatus
from horsies_django.types import BrokerError, Err, Result
from horsies_django.workflows import WorkflowHandle

MAX_BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class WorkflowAction:
    """One action: its permission, what it applies to, and the handle method that does it."""

    name: str
    codename: str
    title: str
    done: str
    applies: Callable[[Workflow], str | None]  # None when eligible, else why it is skipped
    service: Callable[[WorkflowHandle], Result[bool, BrokerError]]

    @property
    def permission(self) -> str:
        return f"horsies_django.{self.codename}"

    def allowed(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(self.permission))


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
        WorkflowAction(
            "cancel_workflows",
            "cancel_workflow",
            "Cancel",
            "Cancelled",
            _open,
            WorkflowHandle.cancel,
        ),
        WorkflowAction(
            "pause_workflows", "pause_workflow", "Pause", "Paused", _running, WorkflowHandle.pause
        ),
        WorkflowAction(
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
    for name in request.POST.getlist("action"):
        action = ACTIONS.get(name)
        if action is not None and not action.allowed(request):
            raise PermissionDenied(f"you need the {action.permission} permission")


def perform(
    model_admin: admin.ModelAdmin[Workflow],
    request: HttpRequest,
    queryset: QuerySet[Workflow],
    action: WorkflowAction,
) -> TemplateResponse | None:
    """Show the confirmation page, or (after confirmation) call the handle for each workflow."""
    if not action.allowed(request):
        raise PermissionDenied(f"you need the {action.permission} permission")
    workflows = list(queryset.order_by("-created_at")[: MAX_BATCH + 1])
    if len(workflows) > MAX_BATCH:
        model_admin.message_user(
            request,
            f"{action.title} works on at most {MAX_BATCH} workflows at once: narrow the "
            "filter or select fewer workflows.",
            messages.ERROR,
        )
        return None
    if request.POST.get("post") != "yes":
        return _confirmation(model_admin, request, workflows, action)
    outcomes = [
        (w, action.service(WorkflowHandle(str(w.pk))) if action.applies(w) is None else None)
        for w in workflows
    ]
    _report(model_admin, request, action, outcomes)
    return None


def _confirmation(
    model_admin: admin.ModelAdmin[Workflow],
    request: HttpRequest,
    workflows: list[Workflow],
    action: WorkflowAction,
) -> TemplateResponse:
    rows = [(w, action.applies(w)) for w in workflows]
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
    return TemplateResponse(
        request, "admin/horsies_django/workflow/action_confirmation.html", context
    )


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
    if skipped:
        total = sum(skipped.values())
        reasons = "; ".join(f"{why} ({n})" for why, n in skipped.most_common())
        model_admin.message_user(request, f"Skipped {total}: {reasons}", messages.WARNING)
