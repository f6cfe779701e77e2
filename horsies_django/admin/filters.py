"""Sidebar filters whose choices never scan the task table.

Task names and error codes come from a loose index scan, queues from settings, workers from
the (small) worker table; liveness and "finished within" are computed from the clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from horsies_django.conf import horsies_settings
from horsies_django.db import admin_queries
from horsies_django.models import Worker, WorkerState

WINDOWS: Final = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
LIVE_STATES: Final = (WorkerState.RUNNING.value, WorkerState.STOPPING.value)


def stale_before() -> Any:
    """Heartbeats older than this mean a worker is stale."""
    return timezone.now() - timedelta(milliseconds=horsies_settings().WORKER_STALE_AFTER_MS)


class _ValueFilter(admin.SimpleListFilter):
    """Equality on one column; choices from a cheap lookup, plus the selected value."""

    field = ""

    def choices_from_db(self, request: HttpRequest) -> list[str]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = self.choices_from_db(request)
        current = self.value()
        if current and current not in values:
            values = [*values, current]
        return [(v, v) for v in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class QueueFilter(_ValueFilter):
    title = "queue"
    parameter_name = field = "queue_name"

    def choices_from_db(self, request: HttpRequest) -> list[str]:
        return [q.name for q in horsies_settings().queues]


class TaskNameFilter(_ValueFilter):
    title = "task name"
    parameter_name = field = "task_name"

    def choices_from_db(self, request: HttpRequest) -> list[str]:
        return task_names(request)


class ErrorCodeFilter(_ValueFilter):
    title = "error code"
    parameter_name = field = "error_code"

    def choices_from_db(self, request: HttpRequest) -> list[str]:
        return error_codes(request)


class FinishedWithinFilter(admin.SimpleListFilter):
    title = "finished"
    parameter_name = "finished"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("1h", "In the last hour"),
            ("24h", "In the last 24 hours"),
            ("7d", "In the last 7 days"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        window = WINDOWS.get(self.value() or "")
        if window is None:
            return queryset
        return queryset.filter(finished_at__gte=timezone.now() - window)


class WorkerLivenessFilter(admin.SimpleListFilter):
    title = "liveness"
    parameter_name = "liveness"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("alive", "Alive"), ("stale", "Stale"), ("stopped", "Stopped")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(liveness_q(self.value())) if self.value() else queryset


def liveness_q(value: str | None) -> Q:
    live = Q(state__in=LIVE_STATES)
    fresh = Q(heartbeat_at__gte=stale_before())
    if value == "alive":
        return live & fresh
    if value == "stale":
        return live & ~fresh
    return ~live


class AttemptWorkerFilter(admin.SimpleListFilter):
    title = "worker"
    parameter_name = "worker_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        workers = Worker.objects.order_by("-started_at")[:50]
        return [(str(w.id), f"{w.name} ({w.state.lower()})") for w in workers]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(worker_id=self.value()) if self.value() else queryset


class AttemptErrorCodeFilter(ErrorCodeFilter):
    """The attempt list offers the codes tasks ended with (attempts carry the same codes)."""


def task_names(request: HttpRequest) -> list[str]:
    """Distinct task names in the table, computed once per request."""
    return _cached(request, "task_name")


def error_codes(request: HttpRequest) -> list[str]:
    return _cached(request, "error_code")


def _cached(request: HttpRequest, column: str) -> list[str]:
    cache: dict[str, list[str]] = request.__dict__.setdefault("_horsies_distinct", {})
    if column not in cache:
        alias = horsies_settings().DATABASE_ALIAS
        cache[column] = admin_queries.distinct_values(alias, column)
    return cache[column]
