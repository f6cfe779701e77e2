"""Display helpers shared by the task, attempt and worker admins.

Nothing here writes: it formats values (badges, ids, JSON, durations) and counts rows
without ever counting a large table exactly.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.template.defaultfilters import truncatechars
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from horsies_django.db import admin_queries
from horsies_django.models import TaskAttempt, Worker

EXACT_COUNT_CAP: Final = 10_000
MEDIA_CSS: Final = {"all": ("horsies_django/admin.css",)}
MEDIA_JS: Final = ("horsies_django/admin.js",)
# Two overlapping sheets: the usual "copy" icon, drawn in the text colour.
COPY_ICON: Final = mark_safe(
    '<svg aria-hidden="true" focusable="false" width="12" height="12" viewBox="0 0 16 16">'
    '<rect x="5" y="5" width="9" height="9" rx="1.5" fill="none" stroke="currentColor" '
    'stroke-width="1.6"/><path d="M11 3.5V3a1 1 0 0 0-1-1H3a1 1 0 0 0-1 1v7a1 1 0 0 0 1 1h.5" '
    'fill="none" stroke="currentColor" stroke-width="1.6"/></svg>'
)

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

    error_chars: int | None = 80  # how much of an error message a row shows; None: all

    @admin.display(description="worker")
    def worker(self, obj: TaskAttempt) -> SafeString:
        return worker_link(obj.worker_id)

    @admin.display(description="took")
    def took(self, obj: TaskAttempt) -> str:
        return human_duration(obj.duration)

    @admin.display(description="outcome")
    def outcome_retry(self, obj: TaskAttempt) -> SafeString:
        if not obj.will_retry:
            return badge(obj.outcome)
        return format_html('{}<br><span class="hz-quiet">will retry</span>', badge(obj.outcome))

    @admin.display(description="error")
    def error(self, obj: TaskAttempt) -> SafeString:
        """The code, and under it the message (its beginning in lists; all of it in the title)."""
        if not (obj.error_code or obj.error_message):
            return format_html("{}", "-")
        message = obj.error_message or ""
        shown = truncatechars(message, self.error_chars) if self.error_chars else message
        return format_html(
            '<code class="hz-code">{}</code><br>{}',
            breakable(obj.error_code or "-"),
            format_html('<span class="hz-message" title="{}">{}</span>', message, shown)
            if shown != message
            else format_html('<span class="hz-message">{}</span>', message),
        )

    @admin.display(description="worker")
    def worker_name(self, obj: TaskAttempt) -> SafeString:
        """The worker's name (host:pid), linked; its short id once the worker row is pruned.

        The name comes from `with_worker_names()`.
        """
        name = getattr(obj, "worker_display_name", None)
        if not (name and obj.worker_id):
            return worker_link(obj.worker_id, copy=False)
        return format_html(
            '<a href="{}" title="{}">{}</a>',
            admin_url("worker", obj.worker_id),
            obj.worker_id,
            breakable(name),
        )

    @admin.display(description="started")
    def started(self, obj: TaskAttempt) -> SafeString:
        return compact_time(obj.started_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, obj: TaskAttempt) -> SafeString:
        return compact_time(obj.finished_at)


def with_worker_names(attempts: QuerySet[TaskAttempt]) -> QuerySet[TaskAttempt]:
    """Each attempt with its worker's name: one primary-key probe per row, in the same statement."""
    name = Worker.objects.filter(pk=OuterRef("worker_id")).values("name")[:1]
    return attempts.annotate(worker_display_name=Subquery(name))


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


def copy_button(value: UUID | str) -> SafeString:
    """An icon button that copies `value`; its label names what it copies."""
    return format_html(
        '<button type="button" class="hz-copy" data-copy="{}" title="Copy the full id" '
        'aria-label="Copy {}">{}</button>',
        value,
        value,
        COPY_ICON,
    )


def copyable_id(
    value: UUID | str | None, url: str | None = None, *, full: bool = False
) -> SafeString:
    """The id, short unless `full` (linked when `url` is given), and a button copying all of it.

    The short form keeps the full id in its title attribute.
    """
    if not value:
        return format_html("{}", "-")
    text = str(value) if full else short_id(value)
    label = (
        format_html('<a href="{}" title="{}">{}</a>', url, value, text)
        if url
        else format_html('<span title="{}">{}</span>', value, text)
    )
    return format_html('<span class="hz-id">{}{}</span>', label, copy_button(value))


def linked_id(value: UUID | str | None, url: str | None) -> SafeString:
    """A short id linking to its page, the full id in the title: for narrow list columns."""
    if not value:
        return format_html("{}", "-")
    if not url:
        return format_html('<span class="hz-id" title="{}">{}</span>', value, short_id(value))
    return format_html('<a class="hz-id" href="{}" title="{}">{}</a>', url, value, short_id(value))


def task_cell(name: str, task_id: UUID | str, url: str | None) -> SafeString:
    """Two lines in one column: the task name (a link to the task), then its copyable id."""
    title = format_html("{} {}", name, task_id)
    label = (
        format_html('<a href="{}" title="{}">{}</a>', url, title, breakable(name))
        if url
        else format_html('<span title="{}">{}</span>', title, breakable(name))
    )
    return format_html('<span class="hz-task">{}</span><br>{}', label, copyable_id(task_id))


def breakable(text: str) -> SafeString:
    """`text` with line-break opportunities after dots and underscores.

    Dotted task names and SNAKE_CASE error codes are single words to a browser; a narrow
    column can wrap them at their natural joints instead of widening the table.
    """
    parts = re.split(r"(?<=[._])(?=.)", text)
    return format_html_join(mark_safe("<wbr>"), "{}", ((part,) for part in parts))


def compact_time(value: datetime | None) -> SafeString:
    """`2026-11-25 17:25:03` in the current time zone, free to wrap between date and time.

    The `<time>` element carries the exact instant; its title the milliseconds and zone.
    """
    if value is None:
        return format_html("{}", "-")
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    exact = f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} {local.tzname() or ''}"
    return format_html(
        '<time datetime="{}" title="{}">{} {}</time>',
        local.isoformat(),
        exact.strip(),
        f"{local:%Y-%m-%d}",
        f"{local:%H:%M:%S}",
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


def worker_link(worker_id: UUID | str | None, *, copy: bool = True) -> SafeString:
    if copy:
        return copyable_id(worker_id, admin_url("worker", worker_id))
    return linked_id(worker_id, admin_url("worker", worker_id) if worker_id else None)
