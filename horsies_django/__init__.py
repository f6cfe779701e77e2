"""horsies_django: a PostgreSQL-backed background task queue that lives inside Django.

The public names below are imported on first use (PEP 562), so that importing the package (as
Django does for `INSTALLED_APPS`) loads only what a process needs: a worker does not load the
workflow modules unless a task module uses them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from horsies_django.exceptions import WorkflowValidationError
    from horsies_django.handles import TaskHandle
    from horsies_django.registry import app, task
    from horsies_django.retry import RetryPolicy
    from horsies_django.types import (
        TASK_TERMINAL_STATES,
        BrokerError,
        BrokerErrorCode,
        BrokerResult,
        ContractCode,
        Err,
        JsonValue,
        Ok,
        OperationalErrorCode,
        OutcomeCode,
        Result,
        RetrievalCode,
        TaskAttempt,
        TaskError,
        TaskInfo,
        TaskResult,
        TaskSendError,
        TaskSendErrorCode,
        TaskSendOptions,
        TaskSendPayload,
        TaskSendResult,
        TaskStatus,
        is_err,
        is_ok,
    )
    from horsies_django.workflows import (
        OnError,
        SubWorkflowNode,
        SuccessCase,
        SuccessPolicy,
        TaskNode,
        WorkflowContext,
        WorkflowDefinition,
        WorkflowHandle,
        WorkflowMeta,
        WorkflowSpec,
        WorkflowStartError,
        WorkflowTaskInfo,
        from_node,
    )

__version__ = "0.1.0"

_TYPES = (
    "TASK_TERMINAL_STATES BrokerError BrokerErrorCode BrokerResult ContractCode Err JsonValue Ok "
    "OperationalErrorCode OutcomeCode Result RetrievalCode TaskAttempt TaskError TaskInfo "
    "TaskResult TaskSendError TaskSendErrorCode TaskSendOptions TaskSendPayload TaskSendResult "
    "TaskStatus is_err is_ok"
)
_WORKFLOWS = (
    "OnError SubWorkflowNode SuccessCase SuccessPolicy TaskNode WorkflowContext "
    "WorkflowDefinition WorkflowHandle WorkflowMeta WorkflowSpec WorkflowStartError "
    "WorkflowTaskInfo from_node"
)
# Each public name -> the module that defines it.
_HOMES: dict[str, str] = {
    "WorkflowValidationError": "horsies_django.exceptions",
    "TaskHandle": "horsies_django.handles",
    "app": "horsies_django.registry",
    "task": "horsies_django.registry",
    "RetryPolicy": "horsies_django.retry",
    **dict.fromkeys(_TYPES.split(), "horsies_django.types"),
    **dict.fromkeys(_WORKFLOWS.split(), "horsies_django.workflows"),
}

__all__ = [
    "TASK_TERMINAL_STATES",
    "BrokerError",
    "BrokerErrorCode",
    "BrokerResult",
    "ContractCode",
    "Err",
    "JsonValue",
    "Ok",
    "OnError",
    "OperationalErrorCode",
    "OutcomeCode",
    "Result",
    "RetrievalCode",
    "RetryPolicy",
    "SubWorkflowNode",
    "SuccessCase",
    "SuccessPolicy",
    "TaskAttempt",
    "TaskError",
    "TaskHandle",
    "TaskInfo",
    "TaskNode",
    "TaskResult",
    "TaskSendError",
    "TaskSendErrorCode",
    "TaskSendOptions",
    "TaskSendPayload",
    "TaskSendResult",
    "TaskStatus",
    "WorkflowContext",
    "WorkflowDefinition",
    "WorkflowHandle",
    "WorkflowMeta",
    "WorkflowSpec",
    "WorkflowStartError",
    "WorkflowTaskInfo",
    "WorkflowValidationError",
    "app",
    "from_node",
    "is_err",
    "is_ok",
    "task",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use, and keep the name here."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'horsies_django' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
