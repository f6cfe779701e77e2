"""The bench project's one user model: what the `orm` workload's tasks insert."""

from typing import ClassVar

from django.db import models


class Item(models.Model):
    i = models.IntegerField()
    created_at = models.DateTimeField()

    objects: ClassVar[models.Manager["Item"]] = models.Manager()

    class Meta:
        db_table = "items_item"

    def __str__(self) -> str:
        return f"item {self.i}"
