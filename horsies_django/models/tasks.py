"""Tasks, their attempts, workers, and the task catalogue.

Rows are written only through `db/` (raw SQL, fenced by status and claim generation);
the models describe the schema, give the admin and user code something to query, and carry
read-only QuerySet helpers named for what they read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from django.db import models
from django.db.models import Q
from django.utils import timezone

from horsies_django.states import (
    TASK_ACTIVE_STATES,
    TASK_TERMINAL_STATES,
    TASK_UNSTARTED_STATES,
    TaskStatus,
    in_order,
)
from horsies_django.types import AttemptOutcome

STATUS_CHOICES = [(s.value, s.value.title()) for s in TaskStatus]
OUTCOME_CHOICES = [(o.value, o.value.replace("_", " ").title()) for o in AttemptOutcome]


class TaskQuerySet(models.QuerySet["Task"]):
    def pending(self) -> TaskQuerySet:
        return self.filter(status=TaskStatus.PENDING)

    def ready(self) -> TaskQuerySet:
        """PENDING tasks a worker may claim now."""
        now = timezone.now()
        return self.pending().filter(enqueued_at__lte=now).exclude(good_until__lte=now)

    def active(self) -> TaskQuerySet:
        """Tasks a worker holds (`TASK_ACTIVE_STATES`)."""
        return self.filter(status__in=in_order(TASK_ACTIVE_STATES))

    def terminal(self) -> TaskQuerySet:
        """Finished tasks (`TASK_TERMINAL_STATES`)."""
        return self.filter(status__in=in_order(TASK_TERMINAL_STATES))

    def failed_since(self, since: datetime) -> TaskQuerySet:
        return self.filter(status=TaskStatus.FAILED, finished_at__gte=since)


class Task(models.Model):
    """One sent task. `enqueued_at` is when it becomes eligible (send time, delay or retry)."""

    id = models.UUIDField(primary_key=True, editable=False)
    task_name = models.CharField(max_length=255)
    queue_name = models.CharField(max_length=64)
    priority = models.SmallIntegerField(default=50)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=TaskStatus.PENDING)
    kwargs = models.JSONField(default=dict)
    result = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=100, null=True, blank=True)
    failed_reason = models.TextField(null=True, blank=True)
    sent_at = models.DateTimeField()
    enqueued_at = models.DateTimeField()
    next_retry_at = models.DateTimeField(null=True, blank=True)
    good_until = models.DateTimeField(null=True, blank=True)
    timeout_ms = models.IntegerField(null=True, blank=True)
    retry_count = models.IntegerField(default=0)
    max_retries = models.IntegerField(default=0)
    options = models.JSONField(default=dict)
    enqueue_sha = models.CharField(max_length=64)
    claimed_by = models.UUIDField(null=True, blank=True)
    claim_gen = models.BigIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    origin = models.UUIDField(
        null=True, blank=True, help_text="The task this one was re-enqueued from."
    )
    sent_by = models.CharField(
        max_length=64,
        db_default="python",
        editable=False,
        help_text="Where the send came from: python, or for horsies_send() its `sender` option "
        "or else the session's application_name (rust, psql, ...).",
    )

    objects: ClassVar[TaskQuerySet] = TaskQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        db_table = "horsies_task"
        ordering = ("-sent_at",)
        indexes: ClassVar[list[models.Index]] = [
            # Shaped like the claim: PENDING rows only, in claim order within a queue.
            models.Index(
                fields=["queue_name", "priority", "enqueued_at", "id"],
                condition=Q(status=TaskStatus.PENDING.value),
                name="horsies_task_claim_idx",
            ),
            models.Index(
                fields=["claimed_by"],
                condition=Q(status__in=in_order(TASK_ACTIVE_STATES)),
                name="horsies_task_active_idx",
            ),
            models.Index(
                fields=["good_until"],
                condition=Q(status__in=in_order(TASK_UNSTARTED_STATES), good_until__isnull=False),
                name="horsies_task_deadline_idx",
            ),
            models.Index(fields=["sent_at"], name="horsies_task_sent_idx"),
            models.Index(fields=["status", "sent_at"], name="horsies_task_status_idx"),
            models.Index(fields=["task_name", "sent_at"], name="horsies_task_name_idx"),
            models.Index(
                fields=["error_code", "sent_at"],
                condition=Q(error_code__isnull=False),
                name="horsies_task_error_idx",
            ),
        ]
        permissions = (
            ("cancel_task", "Can cancel tasks"),
            ("reenqueue_task", "Can re-enqueue tasks"),
            ("run_task_now", "Can run waiting tasks now"),
        )

    def __str__(self) -> str:
        return f"{self.task_name} {str(self.id)[:8]} ({self.status})"

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class TaskAttempt(models.Model):
    """One execution of a task; immutable once written."""

    # No index of its own: the unique (task, attempt) index serves lookups by task.
    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    attempt = models.IntegerField()
    outcome = models.CharField(max_length=16, choices=OUTCOME_CHOICES)
    will_retry = models.BooleanField(default=False)
    error_code = models.CharField(max_length=100, null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    traceback = models.TextField(null=True, blank=True)
    worker_id = models.UUIDField(null=True, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField()

    class Meta:
        db_table = "horsies_task_attempt"
        ordering = ("-finished_at",)
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["task", "attempt"], name="horsies_attempt_unique"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["finished_at"], name="horsies_attempt_finished_idx"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.attempt} of {self.task_id} ({self.outcome})"

    @property
    def duration(self) -> timedelta | None:
        if self.started_at:
            return self.finished_at - self.started_at
        return None


class WorkerState(models.TextChoices):
    RUNNING = "RUNNING", "Running"
    STOPPING = "STOPPING", "Stopping"
    STOPPED = "STOPPED", "Stopped"
    DEAD = "DEAD", "Dead"


class WorkerQuerySet(models.QuerySet["Worker"]):
    def live(self) -> WorkerQuerySet:
        return self.filter(state__in=[WorkerState.RUNNING, WorkerState.STOPPING])


class Worker(models.Model):
    """A `horsies_worker` process; its heartbeat proves it is alive."""

    id = models.UUIDField(primary_key=True, editable=False)
    name = models.CharField(max_length=255)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    processes = models.IntegerField()
    queues = models.JSONField(default=list)
    state = models.CharField(
        max_length=16, choices=WorkerState.choices, default=WorkerState.RUNNING
    )
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.TextField(
        null=True,
        blank=True,
        help_text="Why the worker stopped: a signal, or the error it stopped on.",
    )

    objects: ClassVar[WorkerQuerySet] = WorkerQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        db_table = "horsies_worker"
        ordering = ("-started_at",)

    def __str__(self) -> str:
        return f"{self.name} ({self.hostname}:{self.pid})"


class TaskCatalogueEntry(models.Model):
    """A registered task as senders outside Python see it (`horsies_send()` reads it).

    Kept current by `manage.py migrate` and by every worker at start-up; an entry whose task is
    no longer registered stays (a rolling deploy may still have senders of it).
    """

    task_name = models.CharField(max_length=255, primary_key=True)
    queue_name = models.CharField(max_length=64)
    max_retries = models.IntegerField(default=0)
    timeout_ms = models.IntegerField(null=True, blank=True)
    options = models.JSONField(
        default=dict, help_text="What a send stores in horsies_task.options."
    )
    parameters = models.JSONField(default=list, help_text="Names of the keyword parameters.")
    required_parameters = models.JSONField(default=list, help_text="Those without a default.")
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "horsies_task_catalogue"
        verbose_name = "registered task"
        ordering: ClassVar[list[str]] = ["task_name"]

    def __str__(self) -> str:
        return self.task_name
