"""Periodic schedules as the schedulers keep them (see `horsies_django.schedules`)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q


class Schedule(models.Model):
    """A periodic schedule as the schedulers keep it: declared in code or settings, written here
    when a scheduler starts; each slot fires one task whose id derives from name and slot."""

    name = models.CharField(max_length=200, primary_key=True)
    task_name = models.CharField(max_length=255)
    kwargs = models.JSONField(default=dict)
    pattern = models.CharField(max_length=255, help_text="e.g. 'daily 09:30', 'cron */5 * * * *'.")
    timezone = models.CharField(max_length=64)
    enabled = models.BooleanField(default=True)
    code_enabled = models.BooleanField(
        null=True, blank=True, help_text="`enabled` as last declared (NULL once undeclared)."
    )
    declared = models.BooleanField(
        default=True, help_text="Still declared in code or settings (kept, disabled, if not)."
    )
    catch_up_missed = models.BooleanField(default=False)
    max_catch_up = models.IntegerField(default=100)
    next_run_at = models.DateTimeField(
        null=True, blank=True, help_text="The next slot (NULL: computed by the next scheduler)."
    )
    last_slot_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_task_id = models.UUIDField(null=True, blank=True)
    run_count = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "horsies_schedule"
        ordering = ("name",)
        permissions = (
            ("run_schedule_now", "Can run a schedule's task now"),
            ("toggle_schedule", "Can enable or disable a schedule"),
        )
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["next_run_at"], condition=Q(enabled=True), name="horsies_schedule_due_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def status(self) -> str:
        """ENABLED or DISABLED (shown as a badge, like a task's status)."""
        return "ENABLED" if self.enabled else "DISABLED"
