"""The attempt list: every execution of every task, newest first, read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import truncatechars
from django.utils.html import format_html
from django.utils.safestring import SafeString

from horsies_django.admin import common, filters, search
from horsies_django.models import TaskAttempt

if TYPE_CHECKING:  # django's admin classes are generic only in the stubs
    _AttemptAdmin = admin.ModelAdmin[TaskAttempt]
else:
    _AttemptAdmin = admin.ModelAdmin


@admin.register(TaskAttempt)
class TaskAttemptAdmin(common.AttemptColumns, common.ReadOnlyAdmin, _AttemptAdmin):
    list_display = (
        "task_link",
        "attempt",
        "outcome_badge",
        "will_retry",
        "error_code",
        "message",
        "worker",
        "started_at",
        "finished_at",
        "took",
    )
    list_display_links = None
    list_filter = ("outcome", filters.AttemptErrorCodeFilter, filters.AttemptWorkerFilter)
    list_select_related = ("task",)
    sortable_by = ("finished_at",)
    search_fields = ("task__id",)
    search_help_text = "A task id, or its beginning (8+ hex digits)."
    paginator = common.EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    fields = (
        "task_link",
        "attempt",
        "outcome_badge",
        "will_retry",
        "error_code",
        "error_message",
        "traceback_block",
        "worker",
        "pid",
        "started_at",
        "finished_at",
        "took",
    )
    readonly_fields = fields

    class Media:
        css = common.MEDIA_CSS
        js = common.MEDIA_JS

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[TaskAttempt], search_term: str
    ) -> tuple[QuerySet[TaskAttempt], bool]:
        if not search_term.strip():
            return queryset, False
        q = search.id_filter(search_term, "task_id")
        return (queryset.filter(q) if q is not None else queryset.none()), False

    @admin.display(description="task")
    def task_link(self, obj: TaskAttempt) -> SafeString:
        url = common.admin_url("task", obj.task_id)
        return format_html("{} {}", common.copyable_id(obj.task_id, url), obj.task.task_name)

    @admin.display(description="message")
    def message(self, obj: TaskAttempt) -> str:
        return truncatechars(obj.error_message or "", 80) or "-"

    @admin.display(description="traceback")
    def traceback_block(self, obj: TaskAttempt) -> SafeString:
        return common.preformatted(obj.traceback)
