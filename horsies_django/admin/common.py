"""Display helpers shared by the task, attempt and worker admins.

Nothing here writes: it formats values (badges, ids, JSON, durations) and counts rows
without ever counting a large table exactly.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString

from horsies_django.db import admin_queries
from horsies_django.models import TaskAttempt

EXACT_COUNT_CAP: Final = 10_000
MEDIA_CSS: Final = {"all": ("horsies_django/admin.css",)}
MEDIA_JS: Final = ("horsies_django/admin.js",)

if TYPE_CHECKING:  # generic only in the stubs
    _Paginator = Paginator[Any]
else:
    _Paginator = Paginator


class ReadOnlyAdmin:
    """Admin rows are never added, edited or deleted by hand: services and commands do that."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # pruning is the horsies_prune command


class AttemptColumns:
    """Display columns shared by the attempt list and the attempts inline of a task."""

    @admin.display(description="outcome")
    def outcome_badge(self, obj: TaskAttempt) -> SafeString:
        return badge(obj.outcome)

    @admin.display(description="worker")
    def worker(self, obj: TaskAttempt) -> SafeString:
        return worker_link(obj.worker_id)

    @admin.display(description="duration")
    def took(self, obj: TaskAttempt) -> str:
        return human_duration(obj.duration)


class EstimatedCountPaginator(_Paginator):
    """Counts exactly up to `EXACT_COUNT_CAP` rows, then uses the planner's estimate.

    The capped count keeps the list's ordering so it walks the same index as the page query.
    """

    is_estimate = False

    @cached_property
    def count(self) -> int:
        queryset: QuerySet[Any] = self.object_list  # type: ignore[assignment]
        ordering = list(queryset.query.order_by)[:1] or ["-pk"]
        capped = queryset.order_by(*ordering).values("pk")[: EXACT_COUNT_CAP + 1].count()
        if capped <= EXACT_COUNT_CAP:
            return capped
        self.is_estimate = True
        return max(capped, admin_queries.plan_rows(queryset))


def short_id(value: UUID | str | None) -> str:
    """First 8 and last 4 hex digits: the time prefix of a UUIDv7 and a random tail."""
    text = str(value or "")
    return f"{text[:8]}…{text[-4:]}" if len(text) == 36 else text


def copyable_id(value: UUID | str | None, url: str | None = None) -> SafeString:
    """A short id (linked when `url` is given) with a button that copies the full id."""
    if not value:
        return format_html("{}", "-")
    label = (
        format_html('<a href="{}" title="{}">{}</a>', url, value, short_id(value))
        if url
        else format_html('<span title="{}">{}</span>', value, short_id(value))
    )
    return format_html(
        '<span class="hz-id">{}<button type="button" class="hz-copy" data-copy="{}" '
        'title="Copy the full id" aria-label="Copy {}">copy</button></span>',
        label,
        value,
        value,
    )


def badge(value: str | None, label: str | None = None) -> SafeString:
    """A coloured pill for a status, outcome or liveness value."""
    if not value:
        return format_html("{}", "-")
    return format_html(
        '<span class="hz-badge hz-{}">{}</span>', value.lower(), label or value.title()
    )


def pretty_json(value: Any) -> SafeString:
    """Indented JSON in a preformatted block."""
    if value is None:
        return format_html("{}", "-")
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="hz-pre">{}</pre>', text)


def preformatted(text: str | None) -> SafeString:
    if not text:
        return format_html("{}", "-")
    return format_html('<pre class="hz-pre">{}</pre>', text)


def human_duration(value: timedelta | None) -> str:
    """`850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`; `-` when unknown."""
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def admin_url(model: str, object_id: UUID | str | int | None) -> str | None:
    """The admin change page of a horsies_django object, or None when there is none."""
    if object_id is None:
        return None
    try:
        return reverse(f"admin:horsies_django_{model}_change", args=[object_id])
    except NoReverseMatch:
        return None


def changelist_url(model: str, query: str = "") -> str:
    url = reverse(f"admin:horsies_django_{model}_changelist")
    return f"{url}?{query}" if query else url


def worker_link(worker_id: UUID | str | None) -> SafeString:
    if not worker_id:
        return format_html("{}", "-")
    return copyable_id(worker_id, admin_url("worker", worker_id))
