"""Values of the public contract: results, errors, statuses and codes.

A `TaskResult` holds exactly one of ok/err; built-in error codes can only be produced by the
library (a user string equal to one is refused), so a code always means what it says.

Longer than 400 lines on purpose: every public value of API.md in one place, each a small
class, so the public contract reads as one page.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal, NoReturn, TypeGuard, overload

from pydantic import BaseModel, ConfigDict, field_validator

from horsies_django.states import TASK_TERMINAL_STATES as TASK_TERMINAL_STATES
from horsies_django.states import TaskStatus as TaskStatus

type JsonValue = bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None


# --------------------------------------------------------------------------- Ok / Err


@dataclass(frozen=True, slots=True)
class Ok[T]:
    """The success side of a `Result`."""

    value: T
    __match_args__ = ("value",)

    def is_ok(self) -> Literal[True]:
        return True

    def is_err(self) -> Literal[False]:
        return False

    @property
    def ok_value(self) -> T:
        return self.value

    @property
    def err_value(self) -> NoReturn:
        raise ValueError("Result is Ok, not Err: check is_err() first")


@dataclass(frozen=True, slots=True)
class Err[E]:
    """The failure side of a `Result`."""

    error: E
    __match_args__ = ("error",)

    def is_ok(self) -> Literal[False]:
        return False

    def is_err(self) -> Literal[True]:
        return True

    @property
    def ok_value(self) -> NoReturn:
        raise ValueError(f"Result is Err, not Ok: {self.error!r}")

    @property
    def err_value(self) -> E:
        return self.error


type Result[T, E] = Ok[T] | Err[E]


def is_ok[T, E](result: Result[T, E]) -> TypeGuard[Ok[T]]:
    """Type-narrowing guard: True when `result` is `Ok`."""
    return isinstance(result, Ok)


def is_err[T, E](result: Result[T, E]) -> TypeGuard[Err[E]]:
    """Type-narrowing guard: True when `result` is `Err`."""
    return isinstance(result, Err)


# --------------------------------------------------------------------------- outcomes
# (TaskStatus and its sets live in states.py, re-exported here.)


class AttemptOutcome(StrEnum):
    """How one execution of a task ended."""

    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CRASHED = "CRASHED"
    TIMED_OUT = "TIMED_OUT"


# --------------------------------------------------------------------------- codes


class OperationalErrorCode(StrEnum):
    """Something broke while executing."""

    UNHANDLED_EXCEPTION = "UNHANDLED_EXCEPTION"
    TASK_EXCEPTION = "TASK_EXCEPTION"
    WORKER_CRASHED = "WORKER_CRASHED"
    TASK_TIMEOUT = "TASK_TIMEOUT"
    BROKER_ERROR = "BROKER_ERROR"
    WORKER_RESOLUTION_ERROR = "WORKER_RESOLUTION_ERROR"
    WORKER_SERIALIZATION_ERROR = "WORKER_SERIALIZATION_ERROR"
    RESULT_DESERIALIZATION_ERROR = "RESULT_DESERIALIZATION_ERROR"
    RESULT_TOO_LARGE = "RESULT_TOO_LARGE"
    WORKFLOW_ENQUEUE_FAILED = "WORKFLOW_ENQUEUE_FAILED"
    SUBWORKFLOW_LOAD_FAILED = "SUBWORKFLOW_LOAD_FAILED"


class ContractCode(StrEnum):
    """A typing or usage contract was violated."""

    RETURN_TYPE_MISMATCH = "RETURN_TYPE_MISMATCH"
    PYDANTIC_HYDRATION_ERROR = "PYDANTIC_HYDRATION_ERROR"
    WORKFLOW_CTX_MISSING_ID = "WORKFLOW_CTX_MISSING_ID"


class RetrievalCode(StrEnum):
    """The caller could not obtain a result (the task itself may be fine)."""

    WAIT_TIMEOUT = "WAIT_TIMEOUT"
    TASK_NOT_FOUND = "TASK_NOT_FOUND"
    RESULT_NOT_AVAILABLE = "RESULT_NOT_AVAILABLE"
    RESULT_NOT_READY = "RESULT_NOT_READY"
    INVALID_TIMEOUT = "INVALID_TIMEOUT"
    WORKFLOW_NOT_FOUND = "WORKFLOW_NOT_FOUND"


class OutcomeCode(StrEnum):
    """A non-bug outcome: the task did not run to an answer by design.

    `TASK_TIMEOUT` is here as in horsies; it is the same code as
    `OperationalErrorCode.TASK_TIMEOUT` (the two are equal, and equal to "TASK_TIMEOUT"), which
    is the member a stored "TASK_TIMEOUT" is read back as.
    """

    TASK_CANCELLED = "TASK_CANCELLED"
    TASK_EXPIRED = "TASK_EXPIRED"
    TASK_TIMEOUT = "TASK_TIMEOUT"
    WORKFLOW_PAUSED = "WORKFLOW_PAUSED"
    WORKFLOW_FAILED = "WORKFLOW_FAILED"
    WORKFLOW_CANCELLED = "WORKFLOW_CANCELLED"
    WORKFLOW_EXPIRED = "WORKFLOW_EXPIRED"
    UPSTREAM_SKIPPED = "UPSTREAM_SKIPPED"
    SUBWORKFLOW_FAILED = "SUBWORKFLOW_FAILED"
    WORKFLOW_SUCCESS_CASE_NOT_MET = "WORKFLOW_SUCCESS_CASE_NOT_MET"


type BuiltInCode = OperationalErrorCode | ContractCode | RetrievalCode | OutcomeCode


def _builtin_codes() -> dict[str, BuiltInCode]:
    """Each built-in code string -> its member; TASK_TIMEOUT, in two families, -> the first."""
    codes: dict[str, BuiltInCode] = {}
    for family in (OperationalErrorCode, ContractCode, RetrievalCode, OutcomeCode):
        for member in family:
            codes.setdefault(member.value, member)
    return codes


BUILTIN_CODES: Final[dict[str, BuiltInCode]] = _builtin_codes()

ERROR_CODE_PATTERN: Final = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")


def builtin_code(code: str) -> BuiltInCode | None:
    """The built-in enum member spelled `code`, if any."""
    return BUILTIN_CODES.get(str(code))


EXCEPTION_NAME_PATTERN: Final = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*(?P<name>[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning|Timeout))$"
)


def check_user_code(code: object, *, where: str) -> str:
    """Validate an error code a user wrote (mapper value, retry trigger); return it as str."""
    if isinstance(code, OperationalErrorCode | ContractCode | RetrievalCode | OutcomeCode):
        return code.value
    exception_name = exception_class_name(code)
    if exception_name is not None:
        raise ValueError(
            f"{where}: {code!r} names an exception class, not an error code; codes are "
            f"UPPER_SNAKE_CASE strings such as {code_for_exception(exception_name)!r}. To turn "
            f"the exception into a code, map it with the task's exception_mapper="
            f"{{{exception_name}: {code_for_exception(exception_name)!r}}} (or "
            "HORSIES['EXCEPTION_MAPPER'])"
        )
    if not isinstance(code, str) or not ERROR_CODE_PATTERN.match(code):
        raise ValueError(
            f"{where}: error code {code!r} must be an UPPER_SNAKE_CASE string such as 'TIMEOUT'"
        )
    return code


def exception_class_name(value: object) -> str | None:
    """The class name if `value` is an exception class or a string naming one, else None."""
    if isinstance(value, type) and issubclass(value, BaseException):
        return value.__name__
    if isinstance(value, str):
        match = EXCEPTION_NAME_PATTERN.match(value)
        if match:
            return match["name"]
        if isinstance(getattr(builtins, value, None), type) and issubclass(
            getattr(builtins, value), BaseException
        ):
            return value  # StopIteration, GeneratorExit, ...
    return None


def code_for_exception(class_name: str) -> str:
    """An UPPER_SNAKE_CASE code suggested for an exception class: TimeoutError -> TIMEOUT_ERROR."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name).upper()


# --------------------------------------------------------------------------- TaskError


class TaskError(BaseModel):
    """The error side of a `TaskResult`: a code, a message and optional JSON data.

    A user-built error may not use a plain string equal to a built-in code: pass the enum
    member (e.g. `OperationalErrorCode.BROKER_ERROR`) so that a code's meaning stays exact.
    Stored errors are rebuilt with `TaskError.from_stored`, which maps such strings back.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    error_code: BuiltInCode | str | None = None
    message: str | None = None
    data: Any = None
    exception: dict[str, Any] | None = None

    @field_validator("error_code", mode="before")
    @classmethod
    def _refuse_reserved_strings(cls, value: object) -> object:
        if isinstance(value, OperationalErrorCode | ContractCode | RetrievalCode | OutcomeCode):
            return value
        if isinstance(value, str) and value in BUILTIN_CODES:
            member = BUILTIN_CODES[value]
            raise ValueError(
                f"{value!r} is a built-in error code ({type(member).__name__}.{member.name}); "
                f"use your own code, or pass the enum member {type(member).__name__}.{member.name}"
            )
        return value

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> TaskError:
        """Rebuild an error read from the database (built-in strings become enum members)."""
        code = data.get("error_code")
        if isinstance(code, str) and code in BUILTIN_CODES:
            data = {**data, "error_code": BUILTIN_CODES[code]}
        return cls.model_validate(data)

    def to_stored(self) -> dict[str, Any]:
        """The JSON form written to the database."""
        return {
            "error_code": None if self.error_code is None else str(self.error_code),
            "message": self.message,
            "data": self.data,
            "exception": self.exception,
        }


# --------------------------------------------------------------------------- TaskResult


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Final = _Unset()


class TaskResult[T, E]:
    """Exactly one of `ok` (which may be None) or `err`."""

    __slots__ = ("_is_ok", "_value")

    @overload
    def __init__(self, *, ok: T) -> None: ...
    @overload
    def __init__(self, *, err: E) -> None: ...

    def __init__(self, *, ok: T | _Unset = _UNSET, err: E | _Unset = _UNSET) -> None:
        has_ok, has_err = not isinstance(ok, _Unset), not isinstance(err, _Unset)
        if has_ok == has_err:
            raise ValueError("TaskResult takes exactly one of ok= or err=")
        self._is_ok = has_ok
        self._value: Any = ok if has_ok else err

    def is_ok(self) -> bool:
        return self._is_ok

    def is_err(self) -> bool:
        return not self._is_ok

    @property
    def ok(self) -> T | None:
        return self._value if self._is_ok else None

    @property
    def err(self) -> E | None:
        return None if self._is_ok else self._value

    @property
    def ok_value(self) -> T:
        if not self._is_ok:
            raise ValueError(f"TaskResult is an error, not ok: {self._value!r}")
        return self._value  # type: ignore[no-any-return]

    @property
    def err_value(self) -> E:
        if self._is_ok:
            raise ValueError("TaskResult is ok, not an error: check is_err() first")
        return self._value  # type: ignore[no-any-return]

    def unwrap(self) -> T:
        return self.ok_value

    def unwrap_err(self) -> E:
        return self.err_value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskResult):
            return NotImplemented
        return bool(self._is_ok == other._is_ok and self._value == other._value)

    def __hash__(self) -> int:
        return hash((self._is_ok, repr(self._value)))

    def __repr__(self) -> str:
        side = "ok" if self._is_ok else "err"
        return f"TaskResult({side}={self._value!r})"


def error_result(code: BuiltInCode | str, message: str, **extra: Any) -> TaskResult[Any, TaskError]:
    """A failed `TaskResult` carrying a library-produced error."""
    return TaskResult(err=TaskError(error_code=code, message=message, **extra))


# --------------------------------------------------------------------------- info records


@dataclass(frozen=True, slots=True)
class TaskAttempt:
    """One execution of a task, as recorded in `horsies_task_attempt`."""

    task_id: str
    attempt: int
    outcome: str
    will_retry: bool
    started_at: datetime | None
    finished_at: datetime | None
    error_code: str | None = None
    error_message: str | None = None
    worker_id: str | None = None
    worker_pid: int | None = None


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A task's metadata as returned by `TaskHandle.info()`."""

    task_id: str
    task_name: str
    status: TaskStatus
    queue_name: str
    priority: int
    retry_count: int
    max_retries: int
    sent_at: datetime
    enqueued_at: datetime
    next_retry_at: datetime | None
    good_until: datetime | None
    claimed_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    error_code: str | None = None
    result: TaskResult[Any, TaskError] | None = None
    failed_reason: str | None = None
    attempts: list[TaskAttempt] | None = field(default=None)


class BrokerErrorCode(StrEnum):
    """Why a broker read (`info()`, `cancel()`) could not be done."""

    BROKER_ERROR = "BROKER_ERROR"
    TASK_NOT_FOUND = "TASK_NOT_FOUND"
    INVALID_STATE = "INVALID_STATE"


@dataclass(frozen=True, slots=True)
class BrokerError:
    """A failure of a broker operation, returned as `Err(BrokerError)`."""

    code: BrokerErrorCode
    message: str
    exception: BaseException | None = None


type BrokerResult[T] = Result[T, BrokerError]


# --------------------------------------------------------------------------- sending


class TaskSendErrorCode(StrEnum):
    """Why a send did not enqueue."""

    SEND_SUPPRESSED = "SEND_SUPPRESSED"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    ENQUEUE_FAILED = "ENQUEUE_FAILED"
    PAYLOAD_MISMATCH = "PAYLOAD_MISMATCH"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    ASYNC_CONTEXT = "ASYNC_CONTEXT"


@dataclass(frozen=True, slots=True)
class TaskSendPayload:
    """The serialized envelope of one send, kept on an error so it can be replayed exactly."""

    task_id: str
    task_name: str
    queue_name: str
    priority: int
    kwargs_json: str
    delay_seconds: float | None
    good_until: datetime | None
    enqueue_sha: str


@dataclass(frozen=True, slots=True)
class TaskSendError:
    """A send that did not enqueue. `retryable` sends can be replayed with `retry_send`."""

    code: TaskSendErrorCode
    message: str
    retryable: bool = False
    task_id: str | None = None
    payload: TaskSendPayload | None = None
    exception: BaseException | None = None


type TaskSendResult[T] = Result[T, TaskSendError]

PRIORITY_MIN: Final = 1
PRIORITY_MAX: Final = 100
DEFAULT_PRIORITY: Final = 50


@dataclass(frozen=True, slots=True)
class TaskSendOptions:
    """Per-send options: an absolute `good_until` deadline and a `priority` (1 runs first)."""

    good_until: datetime | None = None
    priority: int | None = None
