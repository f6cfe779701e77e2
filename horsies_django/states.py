"""The task state machine: the statuses, and which of them each operation applies to.

Every eligibility rule in Python reads the sets below; nothing else spells a status as a string.
The SQL in `db/` must name statuses as literals: tests/test_states.py checks each one against
`TaskStatus` and each `status IN (...)` list against these sets. The transitions are drawn in
docs/architecture.md ("The state machine").
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Final


class TaskStatus(StrEnum):
    """Where a task is in its life (see docs/architecture.md for the state machine)."""

    PENDING = "PENDING"
    CLAIMED = "CLAIMED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in TASK_TERMINAL_STATES


# A worker holds the task (its claimed_by and claim generation fence every later write).
TASK_ACTIVE_STATES: Final = frozenset({TaskStatus.CLAIMED, TaskStatus.RUNNING})

# Finished for good: no statement changes such a row again; only pruning deletes it.
TASK_TERMINAL_STATES: Final = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.EXPIRED}
)

# Not finished: waiting for a worker (PENDING) or held by one.
TASK_UNFINISHED_STATES: Final = frozenset({TaskStatus.PENDING}) | TASK_ACTIVE_STATES

# User code has not started: waiting, or claimed but not yet run (such a task can still expire).
TASK_UNSTARTED_STATES: Final = frozenset({TaskStatus.PENDING, TaskStatus.CLAIMED})

# `cancel()` applies: user code has not started, so nothing has to be interrupted.
CANCELLABLE_STATES: Final = TASK_UNSTARTED_STATES

# Re-enqueue applies: finished without success; a new task runs the same arguments again.
REENQUEUABLE_STATES: Final = frozenset(
    {TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.EXPIRED}
)

# Run now applies (when the task's eligible time is still ahead: a delay or a retry backoff).
RUN_NOW_STATES: Final = frozenset({TaskStatus.PENDING})


def in_order(states: Iterable[TaskStatus]) -> list[str]:
    """The values of `states` in `TaskStatus` order: stable text for messages, URLs, indexes."""
    chosen = frozenset(states)
    return [status.value for status in TaskStatus if status in chosen]


# --------------------------------------------------------------------------- workflows


class WorkflowStatus(StrEnum):
    """A workflow's lifecycle (WORKFLOWS.md): PAUSED is not terminal."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


WORKFLOW_TERMINAL_STATES: Final = frozenset(
    {
        WorkflowStatus.COMPLETED,
        WorkflowStatus.FAILED,
        WorkflowStatus.CANCELLED,
        WorkflowStatus.EXPIRED,
    }
)
WORKFLOW_OPEN_STATES: Final = frozenset(WorkflowStatus) - WORKFLOW_TERMINAL_STATES


class OnError(StrEnum):
    """What a node's failure does to its workflow: FAIL keeps resolving, PAUSE stops it.

    Exported by `horsies_django.workflows`; defined here so that the registry (whose
    `app.workflow()` defaults to FAIL) need not import the workflow modules."""

    FAIL = "FAIL"
    PAUSE = "PAUSE"


class NodeStatus(StrEnum):
    """A workflow node's lifecycle; RUNNING is shown while an ENQUEUED node's task runs."""

    PENDING = "PENDING"
    READY = "READY"
    ENQUEUED = "ENQUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
