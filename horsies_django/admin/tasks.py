"""The task list and detail page: read-only, fast on millions of rows, actions via services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from horsies_django.admin import actions, common, filters, search, summary
from horsies_django.admin.changelist import HorsiesChangeList
from horsies_django.models import Task, TaskAttempt
from horsies_django.types import TaskStatus

# Fits beside Django's two sidebars at 1280 px: name and id share a cell, times are compact;
# the start time is on the task's page (a running task's `duration` counts from it).
LIST_DISPLAY = (
    "task",
    "queue",
    "status_badge",
    "attempts",
    "sent",
    "finished",
    "duration",
)

if TYPE_CHECKING:  # django's admin classes are generic only in the stubs
    _AttemptInline = admin.TabularInline[TaskAttempt, Task]
    _TaskAdmin = admin.ModelAdmin[Task]
else:
    _AttemptInline = admin.TabularInline
    _TaskAdmin = admin.ModelAdmin


class TaskAttemptInline(common.AttemptColumns, _AttemptInline):
    model = TaskAttempt
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("attempt",)
    fields = (
        "attempt",
        "outcome_retry",
        "error",
        "worker_name",
        "pid",
        "started",
        "finished",
        "took",
        "traceback_block",
    )
    readonly_fields = fields
    verbose_name_plural = "attempts"
    error_chars = None  # the task's page shows whole messages

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskAttempt]:
        return common.with_worker_names(super().get_queryset(request))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="traceback")
    def traceback_block(self, obj: TaskAttempt) -> SafeString:
        if not obj.traceback:
            return format_html("{}", "-")
        return format_html(
            '<details class="hz-details"><summary>show</summary>{}</details>',
            common.preformatted(obj.traceback),
        )


@admin.register(Task)
class TaskAdmin(common.ReadOnlyAdmin, _TaskAdmin):
    list_display = LIST_DISPLAY
    list_display_links = None
    sortable_by = ("sent", "finished")
    list_filter = (
        "status",
        filters.QueueFilter,
        filters.TaskNameFilter,
        filters.ErrorCodeFilter,
        filters.FinishedWithinFilter,
    )
    date_hierarchy = "sent_at"
    search_fields = ("id",)  # the box is shown; get_search_results decides what matches
    search_help_text = (
        "A task id (or its beginning), a task name or error code (or part of one), a value "
        "inside the arguments, or key=value / a JSON object the arguments contain."
    )
    paginator = common.EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    actions = ("cancel_tasks", "reenqueue_tasks", "run_tasks_now")
    inlines = (TaskAttemptInline,)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id_full",
                    "task_name",
                    "queue_name",
                    "priority",
                    "status_badge",
                    "retries",
                    "sent_by",
                    "origin_link",
                )
            },
        ),
        ("Arguments", {"fields": ("kwargs_json",)}),
        (
            "Outcome",
            {"fields": ("error_code", "failed_reason_block", "result_json", "last_traceback")},
        ),
        ("Ran with", {"fields": ("retry_policy", "timeout", "enqueue_sha")}),
        (
            "Timing",
            {
                "fields": (
                    "sent_at",
                    "enqueued_at",
                    "next_retry_at",
                    "good_until",
                    "claimed_at",
                    "started_at",
                    "finished_at",
                    "duration",
                )
            },
        ),
        ("Claim", {"fields": ("claimed_by_link", "claim_gen", "claim_expires_at")}),
    )
    readonly_fields = tuple(str(f) for _, opts in fieldsets for f in opts["fields"])

    class Media:
        css = common.MEDIA_CSS
        js = common.MEDIA_JS

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return actions.ACTIONS["cancel_tasks"].allowed(request)

    def has_reenqueue_permission(self, request: HttpRequest) -> bool:
        return actions.ACTIONS["reenqueue_tasks"].allowed(request)

    def has_run_now_permission(self, request: HttpRequest) -> bool:
        return actions.ACTIONS["run_tasks_now"].allowed(request)

    # ------------------------------------------------------------------ list

    def get_queryset(self, request: HttpRequest) -> QuerySet[Task]:
        attempts = (
            TaskAttempt.objects.filter(task_id=OuterRef("pk"))
            .order_by()
            .values("task_id")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(attempt_count=Coalesce(Subquery(attempts, output_field=IntegerField()), 0))
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[HorsiesChangeList]:
        return HorsiesChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Task], search_term: str
    ) -> tuple[QuerySet[Task], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        q = search.id_filter(term) or search.kwargs_filter(term)
        if q is None:
            q = search.text_filter(term, filters.task_names(request), filters.error_codes(request))
        return queryset.filter(q), False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            actions.require_permission(request)
        offset = 1 if self.get_actions(request) else 0
        oldest_first = str(LIST_DISPLAY.index("sent") + offset)
        context = {"horsies_summary": summary.build(oldest_first), **(extra_context or {})}
        return super().changelist_view(request, context)

    @admin.display(description="task")
    def task(self, obj: Task) -> SafeString:
        return common.task_cell(obj.task_name, obj.pk, common.admin_url("task", obj.pk))

    @admin.display(description="queue")
    def queue(self, obj: Task) -> str:
        return obj.queue_name

    @admin.display(description="sent", ordering="sent_at")
    def sent(self, obj: Task) -> SafeString:
        return common.compact_time(obj.sent_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, obj: Task) -> SafeString:
        return common.compact_time(obj.finished_at)

    @admin.display(description="status")
    def status_badge(self, obj: Task) -> SafeString:
        return common.badge(obj.status)

    @admin.display(description="tries")
    def attempts(self, obj: Task) -> int:
        return int(getattr(obj, "attempt_count", 0))

    @admin.display(description="took")
    def duration(self, obj: Task) -> SafeString:
        """How long it ran; for a running task, how long it has been running."""
        if obj.status == TaskStatus.RUNNING and obj.started_at:
            return format_html(
                '{}<br><span class="hz-quiet">so far</span>',
                common.human_duration(timezone.now() - obj.started_at),
            )
        return format_html("{}", common.human_duration(obj.duration))

    # ------------------------------------------------------------------ detail

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        buttons = (
            []
            if obj is None
            else [
                (a.name, a.title)
                for a in actions.ACTIONS.values()
                if a.allowed(request) and a.applies(obj) is None
            ]
        )
        context: dict[str, Any] = {"horsies_actions": buttons}
        if obj is not None:
            # The id is shown once, in full with its copy button (the "id" field): the
            # heading and breadcrumbs name the task without the id that `str(task)` carries.
            context["subtitle"] = f"{obj.task_name} ({obj.status})"
            context["horsies_short_id"] = common.short_id(obj.pk)
        return super().change_view(
            request, object_id, form_url, {**context, **(extra_context or {})}
        )

    @admin.display(description="id")
    def id_full(self, obj: Task) -> SafeString:
        return common.copyable_id(obj.pk, full=True)

    @admin.display(description="retries used")
    def retries(self, obj: Task) -> str:
        return f"{obj.retry_count} of {obj.max_retries}"

    @admin.display(description="re-enqueued from")
    def origin_link(self, obj: Task) -> SafeString:
        return common.copyable_id(obj.origin, common.admin_url("task", obj.origin))

    @admin.display(description="arguments")
    def kwargs_json(self, obj: Task) -> SafeString:
        return common.pretty_json(obj.kwargs)

    @admin.display(description="result")
    def result_json(self, obj: Task) -> SafeString:
        return common.pretty_json(obj.result)

    @admin.display(description="error")
    def failed_reason_block(self, obj: Task) -> SafeString:
        return common.preformatted(obj.failed_reason)

    @admin.display(description="traceback (last attempt)")
    def last_traceback(self, obj: Task) -> SafeString:
        attempt = obj.attempts.exclude(traceback=None).order_by("-attempt").first()
        return common.preformatted(attempt.traceback if attempt else None)

    @admin.display(description="retry policy")
    def retry_policy(self, obj: Task) -> SafeString:
        policy = (obj.options or {}).get("retry_policy")
        return common.pretty_json(policy) if policy else format_html("{}", "none")

    @admin.display(description="timeout")
    def timeout(self, obj: Task) -> str:
        ms = obj.timeout_ms or (obj.options or {}).get("timeout_ms")
        return f"{int(ms):,} ms" if ms else "none"

    @admin.display(description="claimed by worker")
    def claimed_by_link(self, obj: Task) -> SafeString:
        return common.worker_link(obj.claimed_by)

    # ------------------------------------------------------------------ actions

    @admin.action(description="Cancel selected tasks…", permissions=["cancel"])
    def cancel_tasks(
        self, request: HttpRequest, queryset: QuerySet[Task]
    ) -> TemplateResponse | None:
        return actions.perform(self, request, queryset, actions.ACTIONS["cancel_tasks"])

    @admin.action(description="Re-enqueue selected tasks as new tasks…", permissions=["reenqueue"])
    def reenqueue_tasks(
        self, request: HttpRequest, queryset: QuerySet[Task]
    ) -> TemplateResponse | None:
        return actions.perform(self, request, queryset, actions.ACTIONS["reenqueue_tasks"])

    @admin.action(description="Run selected waiting tasks now…", permissions=["run_now"])
    def run_tasks_now(
        self, request: HttpRequest, queryset: QuerySet[Task]
    ) -> TemplateResponse | None:
        return actions.perform(self, request, queryset, actions.ACTIONS["run_tasks_now"])
