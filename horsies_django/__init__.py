"""horsies_django: a PostgreSQL-backed background task queue that lives inside Django."""

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

__version__ = "0.1.0"

__all__ = [
    "TASK_TERMINAL_STATES",
    "BrokerError",
    "BrokerErrorCode",
    "BrokerResult",
    "ContractCode",
    "Err",
    "JsonValue",
    "Ok",
    "OperationalErrorCode",
    "OutcomeCode",
    "Result",
    "RetrievalCode",
    "RetryPolicy",
    "TaskAttempt",
    "TaskError",
    "TaskHandle",
    "TaskInfo",
    "TaskResult",
    "TaskSendError",
    "TaskSendErrorCode",
    "TaskSendOptions",
    "TaskSendPayload",
    "TaskSendResult",
    "TaskStatus",
    "app",
    "is_err",
    "is_ok",
    "task",
]
