"""What the task and workflow actions share: a permission per action, a batch limit, a
confirmation page listing every row it will touch (and why some are skipped), and the
message grouping the skipped rows by reason. Each action itself calls a public service."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

MAX_BATCH: Final = 500
TEMPLATE: Final = "admin/horsies_django/action_confirmation.html"


@dataclass(frozen=True, slots=True)
class Guarded[M: Model, S]:
    """One action: its permission, what it applies to (None when a row is eligible, else why it
    is skipped), and the service that does it."""

    name: str
    codename: str
    title: str
    done: str
    applies: Callable[[M], str | None]
    service: S

    @property
    def permission(self) -> str:
        return f"horsies_django.{self.codename}"

    def allowed(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(self.permission))


class _Action(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def permission(self) -> str: ...

    def allowed(self, request: HttpRequest) -> bool: ...


def require_permission(actions: Mapping[str, _Action], request: HttpRequest) -> None:
    """403 when a POST names an action the user may not run (a forged or stale form)."""
    for name in request.POST.getlist("action"):
        action = actions.get(name)
        if action is not None and not action.allowed(request):
            raise PermissionDenied(f"you need the {action.permission} permission")


def batch[M: Model](
    model_admin: admin.ModelAdmin[M],
    request: HttpRequest,
    queryset: QuerySet[M],
    action: _Action,
    *,
    newest_first: str,
    noun: str,
) -> list[M] | None:
    """The selected rows (newest first), or None with an error message past `MAX_BATCH`."""
    if not action.allowed(request):
        raise PermissionDenied(f"you need the {action.permission} permission")
    rows = list(queryset.order_by(newest_first)[: MAX_BATCH + 1])
    if len(rows) > MAX_BATCH:
        model_admin.message_user(
            request,
            f"{action.title} works on at most {MAX_BATCH} {noun}s at once: narrow the "
            f"filter or select fewer {noun}s.",
            messages.ERROR,
        )
        return None
    return rows


def confirmation[M: Model](
    model_admin: admin.ModelAdmin[M],
    request: HttpRequest,
    rows: Sequence[tuple[M, str, str | None]],
    action: _Action,
    noun: str,
) -> TemplateResponse:
    """The page asking to confirm; `rows` are (object, its name, why it is skipped or None)."""
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": f"{action.title}: are you sure?",
        "opts": model_admin.opts,
        "action": action,
        "rows": rows,
        "noun": noun,
        "eligible": sum(1 for _, _, why in rows if why is None),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media,
    }
    return TemplateResponse(request, TEMPLATE, context)


def report_skipped(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, skipped: Counter[str]
) -> None:
    """One warning grouping the rows that were skipped, by reason."""
    if skipped:
        total = sum(skipped.values())
        reasons = "; ".join(f"{why} ({n})" for why, n in skipped.most_common())
        model_admin.message_user(request, f"Skipped {total}: {reasons}", messages.WARNING)
