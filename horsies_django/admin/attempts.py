"""The attempt list: every execution of every task, newest first, read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
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
    # Fits beside Django's two sidebars at 1280 px: name and id share a cell, so do an error's
    # code and message; the worker shows its name; the start time is on the attempt's page.
    list_display = (
        "task_cell",
        "attempt_number",
        "outcome_retry",
        "error",
        "worker_name",
        "finished",
        "took",
    )
    list_display_links = None
    list_filter = ("outcome", filters.AttemptErrorCodeFilter, filters.AttemptWorkerFilter)
    list_select_related = ("task",)
    sortable_by = ("finished",)
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskAttempt]:
        return common.with_worker_names(super().get_queryset(request))

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

    @admin.display(description="task")
    def task_cell(self, obj: TaskAttempt) -> SafeString:
        url = common.admin_url("task", obj.task_id)
        return common.task_cell(obj.task.task_name, obj.task_id, url)

    @admin.display(description="#")
    def attempt_number(self, obj: TaskAttempt) -> int:
        return obj.attempt

    @admin.display(description="traceback")
    def traceback_block(self, obj: TaskAttempt) -> SafeString:
        return common.preformatted(obj.traceback)
