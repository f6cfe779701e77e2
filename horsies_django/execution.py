"""Running one task in the current process and describing how it ended.

This is what a worker child does with each job, and what the testing helpers reuse to run
tasks in-process; a direct call (`my_task(x=1)`) maps exceptions and checks the returned value
with the same functions. It never touches the database: the outcome is a plain value.
"""

from __future__ import annotations

import re
import traceback as tb
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from horsies_django import codec, signals
from horsies_django.conf import MAX_JSONB_BYTES, horsies_settings
from horsies_django.definitions import TaskDefinition
from horsies_django.types import (
    AttemptOutcome,
    BuiltInCode,
    ContractCode,
    OperationalErrorCode,
    TaskError,
    TaskResult,
    builtin_code,
)

# Exception messages and tracebacks are cut to this many characters (head and tail kept).
MAX_ERROR_TEXT_CHARS: Final = 64 * 1024
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one execution ended; `result_json` is the stored `TaskResult`."""

    ok: bool
    result_json: str
    error_code: str | None
    message: str | None
    traceback: str | None
    started_at: datetime | None
    finished_at: datetime
    outcome: str = AttemptOutcome.COMPLETED

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Sent over a pipe for every task: plain values with epoch times pickle several times
        # faster than the generic dataclass state with datetimes.
        started = None if self.started_at is None else self.started_at.timestamp()
        return (
            _outcome_from_wire,
            (
                self.ok,
                self.result_json,
                self.error_code,
                self.message,
                self.traceback,
                started,
                self.finished_at.timestamp(),
                str(self.outcome),
            ),
        )


def _outcome_from_wire(
    ok: bool,
    result_json: str,
    error_code: str | None,
    message: str | None,
    traceback: str | None,
    started: float | None,
    finished: float,
    outcome: str,
) -> Outcome:
    started_at = None if started is None else datetime.fromtimestamp(started, UTC)
    finished_at = datetime.fromtimestamp(finished, UTC)
    return Outcome(
        ok, result_json, error_code, message, traceback, started_at, finished_at, outcome
    )


def now() -> datetime:
    return datetime.now(UTC)


def failure(
    code: str,
    message: str,
    *,
    started_at: datetime | None,
    traceback: str | None = None,
    outcome: str = AttemptOutcome.FAILED,
    exception: dict[str, Any] | None = None,
) -> Outcome:
    """An Outcome for a library-produced error (its texts made storable, see `storable`)."""
    message = storable(message)
    traceback = None if traceback is None else storable(traceback)
    if exception is not None:
        exception = {key: storable(str(value)) for key, value in exception.items()}
    stored = {"error_code": str(code), "message": message, "data": None, "exception": exception}
    return Outcome(
        ok=False,
        result_json=codec.dumps({"err": stored}),
        error_code=str(code),
        message=message,
        traceback=traceback,
        started_at=started_at,
        finished_at=now(),
        outcome=outcome,
    )


def storable(text: str) -> str:
    """`text` with NUL and lone surrogates escaped, its middle cut past `MAX_ERROR_TEXT_CHARS`.

    Exception messages and tracebacks are user data that PostgreSQL must accept: a NUL in one
    would make the outcome unrecordable, and a huge one would travel to the worker parent.
    """
    if len(text) > MAX_ERROR_TEXT_CHARS:
        half = MAX_ERROR_TEXT_CHARS // 2
        cut = len(text) - 2 * half
        text = f"{text[:half]}\n[... {cut:,} characters cut ...]\n{text[-half:]}"
    return _UNSTORABLE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def run_task(
    definition: TaskDefinition | None,
    task_name: str,
    kwargs_json: str,
    *,
    task_id: str = "",
    attempt: int = 1,
) -> Outcome:
    """Rehydrate the arguments, call the task, and check what it returned; the `task_started`
    and `task_finished` signals are sent around the task's code."""
    if definition is None:
        return _run(definition, task_name, kwargs_json)
    if not (
        signals.wanted(signals.task_started, task_name)
        or signals.wanted(signals.task_finished, task_name)
    ):
        return _run(definition, task_name, kwargs_json)
    signals.emit(signals.task_started, task_name, task_id=task_id, attempt=attempt)
    raised: list[BaseException] = []
    outcome = _run(definition, task_name, kwargs_json, raised)
    signals.emit(
        signals.task_finished,
        task_name,
        task_id=task_id,
        attempt=attempt,
        result=codec.decode_result(
            outcome.result_json, definition.return_adapter if outcome.ok else None
        ),
        exception=raised[0] if raised else None,
        duration_s=(
            outcome.finished_at - (outcome.started_at or outcome.finished_at)
        ).total_seconds(),
    )
    return outcome


def _run(
    definition: TaskDefinition | None,
    task_name: str,
    kwargs_json: str,
    raised: list[BaseException] | None = None,
) -> Outcome:
    started = now()
    if definition is None:
        return failure(
            OperationalErrorCode.WORKER_RESOLUTION_ERROR,
            f"no task named {task_name!r} is registered in this worker; deploy the code that "
            "defines it or check HORSIES['TASK_MODULES']",
            started_at=started,
        )
    try:
        kwargs = _rehydrate_kwargs(definition, kwargs_json)
    except (ValidationError, ValueError, ImportError, AttributeError, TypeError) as exc:
        return failure(
            ContractCode.PYDANTIC_HYDRATION_ERROR,
            f"arguments of {task_name} do not match its signature: {exc}",
            started_at=started,
        )
    try:
        returned = definition.fn(**kwargs)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        if raised is not None:
            raised.append(exc)
        return _from_exception(definition, exc, started)
    return _from_return(definition, returned, started)


def _rehydrate_kwargs(definition: TaskDefinition, kwargs_json: str) -> dict[str, Any]:
    raw = codec.loads(kwargs_json)
    out = {}
    for name, value in raw.items():
        param = definition.params.get(name)
        if param is not None and param.receives_result and value is not None:
            out[name] = codec.decode_result(value, param.result_adapter)  # an upstream's result
        else:
            out[name] = codec.rehydrate(value, param.adapter if param else None)
    return out


def _from_return(definition: TaskDefinition, returned: Any, started: datetime) -> Outcome:
    broken = contract_error(definition, returned)
    if broken is not None:
        return failure(broken.code, broken.message, started_at=started)
    limit = horsies_settings().MAX_RESULT_BYTES
    try:
        result_json = codec.encode_result(returned, limit)
    except codec.TooLargeError as exc:
        return failure(
            OperationalErrorCode.RESULT_TOO_LARGE,
            f"{definition.name} returned a result of {exc.size_text} of JSON, over the limit "
            f"of HORSIES['MAX_RESULT_BYTES'] = {limit:,} bytes; store large data elsewhere (a "
            "file, a table) and return a reference to it, or raise HORSIES['MAX_RESULT_BYTES'] "
            f"(at most {MAX_JSONB_BYTES:,})",
            started_at=started,
        )
    except Exception as exc:  # EncodingError, or a returned object misbehaving
        return failure(
            OperationalErrorCode.WORKER_SERIALIZATION_ERROR,
            f"{definition.name} returned a value that cannot be stored: {exc}",
            started_at=started,
        )
    err = None if returned.is_ok() else returned.err_value
    return Outcome(
        ok=returned.is_ok(),
        result_json=result_json,
        error_code=None if err is None or err.error_code is None else str(err.error_code),
        message=None if err is None else err.message,
        traceback=None,
        started_at=started,
        finished_at=now(),
        outcome=AttemptOutcome.COMPLETED if returned.is_ok() else AttemptOutcome.FAILED,
    )


def _from_exception(definition: TaskDefinition, exc: BaseException, started: datetime) -> Outcome:
    mapped = exception_error(definition, exc)
    return failure(
        mapped.code,
        mapped.message,
        started_at=started,
        traceback="".join(tb.format_exception(exc)),
        exception=mapped.exception,
    )


# --------------------------------------------------------------------- shared with direct calls


@dataclass(frozen=True, slots=True)
class Problem:
    """A library-produced error: its code, message and, for an exception, its type and text."""

    code: str
    message: str
    exception: dict[str, Any] | None = None

    def as_result(self) -> TaskResult[Any, TaskError]:
        code: BuiltInCode | str = builtin_code(self.code) or self.code
        return TaskResult(
            err=TaskError(error_code=code, message=self.message, exception=self.exception)
        )


def contract_error(definition: TaskDefinition, returned: Any) -> Problem | None:
    """Why a task's return value breaks its contract (not a TaskResult, ok value not `T`)."""
    if not isinstance(returned, TaskResult):
        return Problem(
            ContractCode.RETURN_TYPE_MISMATCH,
            f"{definition.name} returned {type(returned).__name__}, not a TaskResult: "
            "return TaskResult(ok=...) or TaskResult(err=TaskError(...))",
        )
    if returned.is_ok() and definition.return_adapter is not None:
        try:
            definition.return_adapter.validate_python(returned.ok_value)
        except ValidationError as exc:
            return Problem(
                ContractCode.RETURN_TYPE_MISMATCH,
                f"{definition.name} returned a value that does not match its declared type: {exc}",
            )
    return None


def exception_error(definition: TaskDefinition, exc: BaseException) -> Problem:
    """The error an exception escaping the task becomes (code from `resolve_error_code`)."""
    return Problem(
        resolve_error_code(definition, exc),
        f"Unhandled exception in task {definition.name}: {type(exc).__name__}: {exc}",
        {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "message": str(exc)},
    )


def call_directly(
    definition: TaskDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> TaskResult[Any, TaskError]:
    """A direct call (`my_task(x=1)`): the function here and now, judged as a worker judges it.

    Exceptions are mapped in the worker's order and the return value checked against the
    contract; only KeyboardInterrupt and SystemExit propagate, as in a worker child.
    """
    try:
        returned = definition.fn(*args, **kwargs)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return exception_error(definition, exc).as_result()
    broken = contract_error(definition, returned)
    if broken is not None:
        return broken.as_result()
    result: TaskResult[Any, TaskError] = returned
    return result


def resolve_error_code(definition: TaskDefinition, exc: BaseException) -> str:
    """Exact class match: task mapper, global mapper, task default, global default."""
    exc_type = type(exc)
    if exc_type in definition.exception_mapper:
        return definition.exception_mapper[exc_type]
    return settings_error_code(exc, definition.default_unhandled_error_code)


def settings_error_code(exc: BaseException, default: str | None = None) -> str:
    """The code of HORSIES['EXCEPTION_MAPPER'] for `exc`'s exact class, else `default`, else
    HORSIES['DEFAULT_UNHANDLED_ERROR_CODE'] (tasks of `django.tasks` have no mapper of their own).
    """
    exc_type = type(exc)
    settings = horsies_settings()
    dotted = f"{exc_type.__module__}.{exc_type.__qualname__}"
    mapped = settings.EXCEPTION_MAPPER.get(dotted)
    if mapped is None and exc_type.__module__ == "builtins":
        mapped = settings.EXCEPTION_MAPPER.get(exc_type.__qualname__)
    if mapped is not None:
        return mapped
    if default is not None:
        return default
    return settings.DEFAULT_UNHANDLED_ERROR_CODE
