"""The worker list: who is alive, stale or stopped, and how many tasks each holds now."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from horsies_django.admin import common, filters
from horsies_django.models import Task, Worker
from horsies_django.states import TASK_ACTIVE_STATES, in_order

if TYPE_CHECKING:  # django's admin classes are generic only in the stubs
    _WorkerAdmin = admin.ModelAdmin[Worker]
else:
    _WorkerAdmin = admin.ModelAdmin


def liveness(worker: Worker) -> str:
    """alive, stale (RUNNING/STOPPING but silent too long) or stopped."""
    if worker.state not in filters.LIVE_STATES:
        return "stopped"
    return "alive" if worker.heartbeat_at >= filters.stale_before() else "stale"


@admin.register(Worker)
class WorkerAdmin(common.ReadOnlyAdmin, _WorkerAdmin):
    list_display = (
        "name",
        "hostname",
        "pid",
        "processes",
        "queue_list",
        "started_at",
        "heartbeat_at",
        "liveness_badge",
        "running_now",
        "stopped_because",
    )
    list_filter = (filters.WorkerLivenessFilter, "state", "hostname")
    search_fields = ("name", "hostname")
    show_facets = admin.ShowFacets.NEVER
    fields = (
        "id",
        "name",
        "hostname",
        "pid",
        "processes",
        "queue_list",
        "state",
        "liveness_badge",
        "started_at",
        "heartbeat_at",
        "stopped_at",
        "stop_reason",
        "running_now",
    )
    readonly_fields = fields

    class Media:
        css = common.MEDIA_CSS
        js = common.MEDIA_JS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Worker]:
        # Served by the partial index on claimed_by for CLAIMED/RUNNING rows: one probe per row.
        held = (
            Task.objects.filter(claimed_by=OuterRef("pk"), status__in=in_order(TASK_ACTIVE_STATES))
            .order_by()
            .values("claimed_by")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(running_count=Coalesce(Subquery(held, output_field=IntegerField()), 0))
        )

    @admin.display(description="queues")
    def queue_list(self, obj: Worker) -> str:
        return ", ".join(str(q) for q in obj.queues or []) or "-"

    @admin.display(description="stopped because")
    def stopped_because(self, obj: Worker) -> str:
        return (obj.stop_reason or "").partition("\n")[0] or "-"

    @admin.display(description="liveness")
    def liveness_badge(self, obj: Worker) -> SafeString:
        return common.badge(liveness(obj))

    @admin.display(description="tasks running now")
    def running_now(self, obj: Worker) -> SafeString:
        n = int(getattr(obj, "running_count", 0))
        query = urlencode(
            {"claimed_by": str(obj.pk), "status__in": ",".join(in_order(TASK_ACTIVE_STATES))}
        )
        return format_html('<a href="{}">{}</a>', common.changelist_url("task", query), n)
