"""What is stored: tasks, their attempts, workers, the task catalogue, workflows and their
nodes, and periodic schedules. One module per family; every model is importable from here."""

from horsies_django.models.schedules import Schedule
from horsies_django.models.tasks import (
    OUTCOME_CHOICES,
    STATUS_CHOICES,
    Task,
    TaskAttempt,
    TaskCatalogueEntry,
    TaskQuerySet,
    Worker,
    WorkerQuerySet,
    WorkerState,
)
from horsies_django.models.workflows import (
    NODE_STATUS_CHOICES,
    WORKFLOW_STATUS_CHOICES,
    IntArrayField,
    Workflow,
    WorkflowNode,
)

__all__ = [
    "NODE_STATUS_CHOICES",
    "OUTCOME_CHOICES",
    "STATUS_CHOICES",
    "WORKFLOW_STATUS_CHOICES",
    "IntArrayField",
    "Schedule",
    "Task",
    "TaskAttempt",
    "TaskCatalogueEntry",
    "TaskQuerySet",
    "Worker",
    "WorkerQuerySet",
    "WorkerState",
    "Workflow",
    "WorkflowNode",
]
