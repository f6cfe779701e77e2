"""Workflows and their nodes (advanced by the database's engine: migrations 0008 and 0009)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from django.db import models
from django.db.models import Q

from horsies_django.states import (
    WORKFLOW_OPEN_STATES,
    NodeStatus,
    WorkflowStatus,
)


class IntArrayField(models.Field):  # type: ignore[type-arg]
    """A PostgreSQL `integer[]` (node indexes), without requiring django.contrib.postgres."""

    description = "Array of integers"

    def db_type(self, connection: object) -> str:
        return "integer[]"

    def deconstruct(self) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        name, _, args, kwargs = super().deconstruct()
        return name, "horsies_django.models.IntArrayField", args, kwargs  # as migrations say

    def get_prep_value(self, value: object) -> list[int] | None:
        return None if value is None else [int(v) for v in value]  # type: ignore[attr-defined]


WORKFLOW_STATUS_CHOICES = [(s.value, s.value.title()) for s in WorkflowStatus]
NODE_STATUS_CHOICES = [(s.value, s.value.title()) for s in NodeStatus]


class Workflow(models.Model):
    """One started workflow: a DAG of nodes, advanced by the database as their tasks finish."""

    id = models.UUIDField(primary_key=True, editable=False)
    name = models.CharField(max_length=255)
    definition_key = models.CharField(max_length=255, null=True, blank=True)
    status = models.CharField(max_length=16, choices=WORKFLOW_STATUS_CHOICES)
    on_error = models.CharField(max_length=8, default="FAIL")
    output_index = models.IntegerField(null=True, blank=True)
    success_policy = models.JSONField(
        null=True, blank=True, help_text="Required node indexes of each case, and the optional."
    )
    result = models.JSONField(null=True, blank=True, help_text="The final TaskResult.")
    error_code = models.CharField(max_length=100, null=True, blank=True)
    failed_reason = models.TextField(null=True, blank=True)
    parent_workflow = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    parent_node_index = models.IntegerField(null=True, blank=True)
    root_workflow_id = models.UUIDField()
    depth = models.IntegerField(default=0)
    node_count = models.IntegerField()
    nodes_done = models.IntegerField(default=0)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was last paused (cleared on resume)."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "horsies_workflow"
        ordering = ("-created_at",)
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["created_at"], name="horsies_workflow_created_idx"),
            models.Index(fields=["status", "created_at"], name="horsies_workflow_status_idx"),
            models.Index(
                fields=["status"],
                condition=Q(status__in=sorted(WORKFLOW_OPEN_STATES)),
                name="horsies_workflow_open_idx",
            ),
        ]
        permissions = (
            ("cancel_workflow", "Can cancel workflows"),
            ("pause_workflow", "Can pause and resume workflows"),
        )

    def __str__(self) -> str:
        return f"{self.name} {str(self.id)[:8]} ({self.status})"


class WorkflowNode(models.Model):
    """One node of a workflow: a task to run (or a child workflow) once its dependencies allow."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="nodes")
    index = models.IntegerField()
    node_id = models.CharField(max_length=128)
    kind = models.CharField(max_length=16, default="task")
    task_name = models.CharField(max_length=255, null=True, blank=True)
    queue_name = models.CharField(max_length=64, null=True, blank=True)
    priority = models.SmallIntegerField(default=50)
    kwargs = models.JSONField(default=dict)
    waits_for = IntArrayField(default=list, help_text="Dependencies.")
    dependants = IntArrayField(default=list, help_text="Who waits for it.")
    args_from = models.JSONField(default=dict, help_text="Parameter -> upstream index.")
    workflow_ctx_from = IntArrayField(default=list)
    join = models.CharField(max_length=8, default="all")
    min_success = models.IntegerField(null=True, blank=True)
    allow_failed_deps = models.BooleanField(default=False)
    deps_done = models.IntegerField(default=0, help_text="Dependencies that are terminal.")
    deps_ok = models.IntegerField(default=0, help_text="Dependencies that COMPLETED.")
    good_until = models.DateTimeField(null=True, blank=True)
    wants_ctx = models.BooleanField(default=False)
    wants_meta = models.BooleanField(default=False)
    max_retries = models.IntegerField(default=0)
    timeout_ms = models.IntegerField(null=True, blank=True)
    options = models.JSONField(default=dict, help_text="What its task stores in options.")
    sub_definition_key = models.CharField(max_length=255, null=True, blank=True)
    status = models.CharField(max_length=16, choices=NODE_STATUS_CHOICES)
    task_id = models.UUIDField(null=True, blank=True)
    sub_workflow_id = models.UUIDField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=100, null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "horsies_workflow_node"
        ordering = ("workflow", "index")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["workflow", "index"], name="horsies_node_unique"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            # The advancing trigger finds a finished task's node by its task id.
            models.Index(
                fields=["task_id"],
                condition=Q(task_id__isnull=False),
                name="horsies_node_task_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.node_id} ({self.status})"
