"""The workflow list and detail page: read-only, the DAG drawn as SVG, actions via the handle.

The list is served by the `created_at` and `(status, created_at)` indexes and never counts the
table exactly; the detail page reads the workflow's nodes once, with their tasks' statuses.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from django.contrib import admin
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from horsies_django.admin import common, dag, workflow_actions
from horsies_django.admin.changelist import HorsiesChangeList
from horsies_django.models import Task, Workflow, WorkflowNode
from horsies_django.states import NodeStatus, TaskStatus

NAME_CHOICES_FROM: Final = 1_000  # the name filter offers the names of this many recent workflows
MEDIA_CSS: Final = {"all": (*common.MEDIA_CSS["all"], "horsies_django/workflows.css")}

if TYPE_CHECKING:  # django's admin classes are generic only in the stubs
    _WorkflowAdmin = admin.ModelAdmin[Workflow]
else:
    _WorkflowAdmin = admin.ModelAdmin


class WorkflowNameFilter(admin.SimpleListFilter):
    """Names seen among the latest workflows (one index-ordered, limited read), plus the
    selected one: workflow names are free text, so no scan of the whole table lists them."""

    title = "name"
    parameter_name = "name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        recent = Workflow.objects.order_by("-created_at").values_list("name", flat=True)
        names = set(recent[:NAME_CHOICES_FROM])
        if self.value():
            names.add(str(self.value()))
        return [(n, n) for n in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(name=self.value()) if self.value() else queryset


class WorkflowLevelFilter(admin.SimpleListFilter):
    title = "level"
    parameter_name = "level"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("top", "Top-level"), ("sub", "Subworkflows")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "top":
            return queryset.filter(depth=0)
        if self.value() == "sub":
            return queryset.filter(depth__gt=0)
        return queryset


def shown_status(node: WorkflowNode) -> str:
    """The node's status as the handle reports it: an ENQUEUED node whose task (or child
    workflow) runs is RUNNING (SELECT_NODES of db/workflow_queries.py)."""
    if node.status == NodeStatus.ENQUEUED and (
        node.kind == "subworkflow" or getattr(node, "task_status", None) == TaskStatus.RUNNING
    ):
        return NodeStatus.RUNNING.value
    return node.status


def node_url(node: WorkflowNode) -> str | None:
    if node.kind == "subworkflow":
        return common.admin_url("workflow", node.sub_workflow_id)
    return common.admin_url("task", node.task_id)


def nodes_of(workflow: Workflow) -> list[WorkflowNode]:
    """Its nodes in index order, each with its task's status: one statement."""
    task_status = Task.objects.filter(pk=OuterRef("task_id")).values("status")[:1]
    return list(
        workflow.nodes.defer("kwargs", "result", "options", "args_from")
        .annotate(task_status=Subquery(task_status))
        .order_by("index")
    )


@admin.register(Workflow)
class WorkflowAdmin(common.ReadOnlyAdmin, _WorkflowAdmin):
    list_display = ("workflow", "status_badge", "progress", "started", "duration")
    list_display_links = None
    sortable_by = ()  # newest first, along the created_at index
    list_filter = ("status", WorkflowNameFilter, WorkflowLevelFilter)
    date_hierarchy = "created_at"
    search_fields = ("name",)  # get_search_results decides what matches
    search_help_text = "A full workflow id, or part of a workflow's name."
    paginator = common.EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    actions = ("cancel_workflows", "pause_workflows", "resume_workflows")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id_full",
                    "name",
                    "definition_key",
                    "status_badge",
                    "progress",
                    "on_error",
                    "output_node",
                    "parent_link",
                )
            },
        ),
        ("Outcome", {"fields": ("error_code", "failed_reason_block", "result_json")}),
        ("Timing", {"fields": ("created_at", "started_at", "finished_at", "duration")}),
    )
    readonly_fields = tuple(str(f) for _, opts in fieldsets for f in opts["fields"])

    class Media:
        css = MEDIA_CSS
        js = common.MEDIA_JS

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return workflow_actions.ACTIONS["cancel_workflows"].allowed(request)

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return workflow_actions.ACTIONS["pause_workflows"].allowed(request)

    # ------------------------------------------------------------------ list

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[HorsiesChangeList]:
        return HorsiesChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Workflow], search_term: str
    ) -> tuple[QuerySet[Workflow], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=UUID(term)), False
        except ValueError:
            return queryset.filter(name__icontains=term), False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            workflow_actions.require_permission(request)
        return super().changelist_view(request, extra_context)

    @admin.display(description="workflow")
    def workflow(self, obj: Workflow) -> SafeString:
        cell = common.task_cell(obj.name, obj.pk, common.admin_url("workflow", obj.pk))
        if not obj.depth:
            return cell
        return format_html('{}<br><span class="hz-quiet">subworkflow</span>', cell)

    @admin.display(description="status")
    def status_badge(self, obj: Workflow) -> SafeString:
        return common.badge(obj.status)

    @admin.display(description="progress")
    def progress(self, obj: Workflow) -> SafeString:
        total = max(obj.node_count, 0)
        done = min(max(obj.nodes_done, 0), total)
        percent = round(100 * done / total) if total else 0
        return format_html(
            '<span class="hz-progress" title="{} of {} nodes done">'
            '<span class="hz-progress-bar"><span style="width: {}%"></span></span>'
            '<span class="hz-progress-text">{}/{}</span></span>',
            done,
            total,
            percent,
            done,
            total,
        )

    @admin.display(description="started", ordering="started_at")
    def started(self, obj: Workflow) -> SafeString:
        return common.compact_time(obj.started_at)

    @admin.display(description="took")
    def duration(self, obj: Workflow) -> SafeString:
        """How long it ran; for an open workflow, how long it has been running."""
        if obj.started_at is None:
            return format_html("{}", "-")
        if obj.finished_at is None:
            so_far: timedelta = timezone.now() - obj.started_at
            return format_html(
                '{}<br><span class="hz-quiet">so far</span>', common.human_duration(so_far)
            )
        return format_html("{}", common.human_duration(obj.finished_at - obj.started_at))

    # ------------------------------------------------------------------ detail

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        context: dict[str, Any] = {}
        if obj is not None:
            nodes = nodes_of(obj)
            context = {
                "subtitle": f"{obj.name} ({obj.status})",
                "horsies_short_id": common.short_id(obj.pk),
                "horsies_actions": [
                    (a.name, a.title)
                    for a in workflow_actions.ACTIONS.values()
                    if a.allowed(request) and a.applies(obj) is None
                ],
                "horsies_dag": dag.render([self._dag_node(n) for n in nodes]),
                "horsies_dag_legend": dag.legend(),
                "horsies_nodes": [self._node_row(n, nodes) for n in nodes],
            }
        return super().change_view(
            request, object_id, form_url, {**context, **(extra_context or {})}
        )

    @staticmethod
    def _dag_node(node: WorkflowNode) -> dag.DagNode:
        return dag.DagNode(
            index=node.index,
            node_id=node.node_id,
            kind=node.kind,
            task_name=node.task_name,
            status=shown_status(node),
            waits_for=tuple(node.waits_for or ()),
            url=node_url(node),
        )

    @staticmethod
    def _node_row(node: WorkflowNode, nodes: list[WorkflowNode]) -> dict[str, Any]:
        ids = {n.index: n.node_id for n in nodes}
        if node.kind == "subworkflow":
            what = format_html(
                '<a href="{}">subworkflow</a> {}',
                node_url(node) or "#",
                common.breakable(node.sub_definition_key or ""),
            )
        elif node.task_id:
            what = format_html(
                '<a href="{}" title="{}">{}</a>',
                node_url(node) or "#",
                node.task_id,
                common.breakable(node.task_name or "-"),
            )
        else:
            what = format_html("{}", common.breakable(node.task_name or "-"))
        return {
            "index": node.index,
            "node_id": node.node_id,
            "what": what,
            "waits_for": format_html_join(
                ", ", "{}", ((ids.get(i, f"#{i}"),) for i in node.waits_for or ())
            )
            or "-",
            "status": common.badge(shown_status(node)),
            "started": common.compact_time(node.started_at),
            "completed": common.compact_time(node.completed_at),
            "error_code": node.error_code or "-",
        }

    @admin.display(description="id")
    def id_full(self, obj: Workflow) -> SafeString:
        return common.copyable_id(obj.pk, full=True)

    @admin.display(description="output node")
    def output_node(self, obj: Workflow) -> str:
        if obj.output_index is None:
            return "- (the sink nodes' results)"
        node = obj.nodes.filter(index=obj.output_index).only("node_id").first()
        return node.node_id if node else f"#{obj.output_index}"

    @admin.display(description="parent workflow")
    def parent_link(self, obj: Workflow) -> SafeString:
        if obj.parent_workflow_id is None:
            return format_html("{}", "- (top-level)")
        return format_html(
            "{} (node #{}, depth {})",
            common.copyable_id(
                obj.parent_workflow_id, common.admin_url("workflow", obj.parent_workflow_id)
            ),
            obj.parent_node_index,
            obj.depth,
        )

    @admin.display(description="result")
    def result_json(self, obj: Workflow) -> SafeString:
        return common.pretty_json(obj.result)

    @admin.display(description="error")
    def failed_reason_block(self, obj: Workflow) -> SafeString:
        return common.preformatted(obj.failed_reason)

    # ------------------------------------------------------------------ actions

    @admin.action(description="Cancel selected workflows…", permissions=["cancel"])
    def cancel_workflows(
        self, request: HttpRequest, queryset: QuerySet[Workflow]
    ) -> TemplateResponse | None:
        return workflow_actions.perform(
            self, request, queryset, workflow_actions.ACTIONS["cancel_workflows"]
        )

    @admin.action(description="Pause selected workflows…", permissions=["pause"])
    def pause_workflows(
        self, request: HttpRequest, queryset: QuerySet[Workflow]
    ) -> TemplateResponse | None:
        return workflow_actions.perform(
            self, request, queryset, workflow_actions.ACTIONS["pause_workflows"]
        )

    @admin.action(description="Resume selected paused workflows…", permissions=["pause"])
    def resume_workflows(
        self, request: HttpRequest, queryset: QuerySet[Workflow]
    ) -> TemplateResponse | None:
        return workflow_actions.perform(
            self, request, queryset, workflow_actions.ACTIONS["resume_workflows"]
        )
