"""The demo's call counters, visible in the admin next to horsies' tasks."""

from typing import TYPE_CHECKING

from django.contrib import admin

from orders.models import DemoCounter

if TYPE_CHECKING:
    DemoCounterAdminBase = admin.ModelAdmin[DemoCounter]
else:
    DemoCounterAdminBase = admin.ModelAdmin


@admin.register(DemoCounter)
class DemoCounterAdmin(DemoCounterAdminBase):
    list_display = ("key", "count")
    search_fields = ("key",)
