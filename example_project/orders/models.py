"""A tiny model for the demo: counts calls across worker processes (used by a flaky task)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models, transaction


class DemoCounter(models.Model):
    """How many times something identified by `key` has happened."""

    key = models.CharField(max_length=200, unique=True)
    count = models.PositiveIntegerField(default=0)

    objects: ClassVar[models.Manager[DemoCounter]] = models.Manager()

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"

    @classmethod
    def increment(cls, key: str) -> int:
        """Add one to the counter `key` (created at 0) and return the new count."""
        with transaction.atomic():
            counter, _ = cls.objects.select_for_update().get_or_create(key=key)
            counter.count += 1
            counter.save(update_fields=["count"])
        return int(counter.count)
