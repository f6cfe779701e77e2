"""Periodic schedules in the admin: what each runs and when, and the operator's actions.

Rows are written by schedulers (from the declarations in code and settings); the admin only
reads them, and acts through `horsies_django.schedules.operations`: "Run now" (permission
`run_schedule_now`) sends the schedule's task at once; "Enable" and "Disable" (permission
`toggle_schedule`) switch it, an enabled schedule starting from its next slot after now.
Each action asks for confirmation on a page listing every schedule it will touch.
"""

from __future__ import annotations

import json
import zoneinfo
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from horsies_django.admin import common, confirmed
from horsies_django.models import Schedule
from horsies_django.schedules import operations
from horsies_django.types import Err

if TYPE_CHECKING:  # django's admin classes are generic only in the stubs
    _ScheduleAdmin = admin.ModelAdmin[Schedule]
else:
    _ScheduleAdmin = admin.ModelAdmin


def _runnable(schedule: Schedule) -> str | None:
    return None if schedule.declared else "no longer declared in code or settings"


def _disabled(schedule: Schedule) -> str | None:
    if schedule.enabled:
        return "enabled already"
    return _runnable(schedule)


def _enabled(schedule: Schedule) -> str | None:
    return None if schedule.enabled else "disabled already"


def _run(schedule: Schedule) -> str | None:
    result = operations.run_now(schedule.task_name, _kwargs_json(schedule))
    return result.err_value.message if result.is_err() else None


def _switch(enabled: bool) -> Callable[[Schedule], str | None]:
    def switch(schedule: Schedule) -> str | None:
        result = operations.set_enabled(schedule.name, enabled)
        if isinstance(result, Err):
            return result.error.message
        return None if result.value else "its state changed meanwhile: nothing to do"

    return switch


def _kwargs_json(schedule: Schedule) -> str:
    return json.dumps(schedule.kwargs)


ACTIONS: Final = {
    a.name: a
    for a in (
        confirmed.Guarded(
            "run_schedules_now", "run_schedule_now", "Run now", "Sent", _runnable, _run
        ),
        confirmed.Guarded(
            "enable_schedules", "toggle_schedule", "Enable", "Enabled", _disabled, _switch(True)
        ),
        confirmed.Guarded(
            "disable_schedules", "toggle_schedule", "Disable", "Disabled", _enabled, _switch(False)
        ),
    )
}


@admin.register(Schedule)
class ScheduleAdmin(common.ReadOnlyAdmin, _ScheduleAdmin):
    list_display = (
        "name",
        "task_name",
        "pattern",
        "enabled_badge",
        "last_run",
        "next_run",
        "last_task",
        "run_count",
    )
    list_filter = ("enabled", "declared", "task_name")
    search_fields = ("name", "task_name")
    actions = ("run_schedules_now", "enable_schedules", "disable_schedules")
    fields = (
        "name",
        "task_name",
        "kwargs_json",
        "pattern",
        "timezone",
        "enabled_badge",
        "declared",
        "catch_up_missed",
        "max_catch_up",
        "next_run",
        "last_slot_at",
        "last_run",
        "last_task",
        "run_count",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    class Media:
        css = common.MEDIA_CSS
        js = common.MEDIA_JS

    def has_run_schedule_now_permission(self, request: HttpRequest) -> bool:
        return ACTIONS["run_schedules_now"].allowed(request)

    def has_toggle_schedule_permission(self, request: HttpRequest) -> bool:
        return ACTIONS["enable_schedules"].allowed(request)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            confirmed.require_permission(ACTIONS, request)
        return super().changelist_view(request, extra_context)

    @admin.display(description="enabled", ordering="enabled")
    def enabled_badge(self, obj: Schedule) -> SafeString:
        label = "Enabled" if obj.enabled else "Disabled"
        return common.badge("completed" if obj.enabled else "cancelled", label)

    @admin.display(description="kwargs")
    def kwargs_json(self, obj: Schedule) -> SafeString:
        return common.pretty_json(obj.kwargs)

    @admin.display(description="last run", ordering="last_run_at")
    def last_run(self, obj: Schedule) -> SafeString:
        return common.compact_time(obj.last_run_at)

    @admin.display(description="next run", ordering="next_run_at")
    def next_run(self, obj: Schedule) -> SafeString:
        """In the schedule's timezone, and in UTC below."""
        if obj.next_run_at is None:
            return format_html("{}", "at the next scheduler tick" if obj.enabled else "-")
        try:
            local = obj.next_run_at.astimezone(zoneinfo.ZoneInfo(obj.timezone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            local = obj.next_run_at
        if local.utcoffset() == timedelta(0) and obj.timezone in ("UTC", "Etc/UTC"):
            return format_html("{} UTC", f"{local:%Y-%m-%d %H:%M:%S}")
        return format_html(
            '{} <span class="hz-quiet">{}</span><br><span class="hz-quiet">{} UTC</span>',
            f"{local:%Y-%m-%d %H:%M:%S}",
            obj.timezone,
            f"{obj.next_run_at.astimezone(zoneinfo.ZoneInfo('UTC')):%Y-%m-%d %H:%M:%S}",
        )

    @admin.display(description="last task")
    def last_task(self, obj: Schedule) -> SafeString:
        return common.linked_id(obj.last_task_id, common.admin_url("task", obj.last_task_id))

    @admin.action(description="Run selected schedules now…", permissions=["run_schedule_now"])
    def run_schedules_now(
        self, request: HttpRequest, queryset: QuerySet[Schedule]
    ) -> TemplateResponse | None:
        return self._perform(request, queryset, "run_schedules_now")

    @admin.action(description="Enable selected schedules…", permissions=["toggle_schedule"])
    def enable_schedules(
        self, request: HttpRequest, queryset: QuerySet[Schedule]
    ) -> TemplateResponse | None:
        return self._perform(request, queryset, "enable_schedules")

    @admin.action(description="Disable selected schedules…", permissions=["toggle_schedule"])
    def disable_schedules(
        self, request: HttpRequest, queryset: QuerySet[Schedule]
    ) -> TemplateResponse | None:
        return self._perform(request, queryset, "disable_schedules")

    def _perform(
        self, request: HttpRequest, queryset: QuerySet[Schedule], name: str
    ) -> TemplateResponse | None:
        action = ACTIONS[name]
        rows = confirmed.batch(
            self, request, queryset, action, newest_first="name", noun="schedule"
        )
        if rows is None:
            return None
        if request.POST.get("post") != "yes":
            listed = [(s, s.name, action.applies(s)) for s in rows]
            return confirmed.confirmation(self, request, listed, action, "schedule")
        done, skipped = 0, Counter[str]()
        for schedule in rows:
            why = action.applies(schedule)
            why = why if why is not None else action.service(schedule)
            if why is None:
                done += 1
            else:
                skipped[why] += 1
        noun = "schedule" if done == 1 else "schedules"
        self.message_user(
            request, f"{action.done} {done} {noun}.", messages.SUCCESS if done else messages.WARNING
        )
        confirmed.report_skipped(self, request, skipped)
        return None
