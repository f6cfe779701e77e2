"""Values of the public contract: Ok/Err, TaskResult, TaskError, codes and statuses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import horsies_django
from horsies_django import (
    TASK_TERMINAL_STATES,
    ContractCode,
    Err,
    Ok,
    OperationalErrorCode,
    OutcomeCode,
    Result,
    RetrievalCode,
    TaskError,
    TaskResult,
    TaskSendErrorCode,
    TaskStatus,
    is_err,
    is_ok,
)
from horsies_django.types import (
    BUILTIN_CODES,
    builtin_code,
    check_user_code,
    exception_class_name,
)


def test_every_documented_name_is_exported() -> None:
    documented = [
        "app",
        "task",
        "Ok",
        "Err",
        "Result",
        "is_ok",
        "is_err",
        "TaskResult",
        "TaskError",
        "TaskSendResult",
        "TaskSendError",
        "TaskSendErrorCode",
        "TaskSendPayload",
        "TaskSendOptions",
        "TaskHandle",
        "TaskInfo",
        "TaskAttempt",
        "TaskStatus",
        "TASK_TERMINAL_STATES",
        "RetryPolicy",
        "JsonValue",
        "OperationalErrorCode",
        "ContractCode",
        "RetrievalCode",
        "OutcomeCode",
        "BrokerResult",
    ]
    missing = [name for name in documented if not hasattr(horsies_django, name)]
    assert missing == []
    assert set(documented) <= set(horsies_django.__all__)


def test_ok_and_err_sides() -> None:
    ok: Result[int, str] = Ok(3)
    err: Result[int, str] = Err("nope")
    assert ok.is_ok()
    assert not ok.is_err()
    assert err.is_err()
    assert not err.is_ok()
    assert is_ok(ok)
    assert not is_err(ok)
    assert is_err(err)
    assert not is_ok(err)
    assert ok.ok_value == 3
    assert err.err_value == "nope"
    with pytest.raises(ValueError, match="is Ok"):
        _ = ok.err_value
    with pytest.raises(ValueError, match="is Err"):
        _ = err.ok_value


def test_ok_and_err_pattern_match() -> None:
    def describe(result: Result[int, str]) -> str:
        match result:
            case Ok(value):
                return f"ok {value}"
            case Err(error):
                return f"err {error}"

    assert describe(Ok(1)) == "ok 1"
    assert describe(Err("x")) == "err x"


def test_task_result_needs_exactly_one_side() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TaskResult()  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="exactly one"):
        TaskResult(ok=1, err=TaskError(error_code="X"))  # type: ignore[call-overload]


def test_task_result_ok_none_is_a_success() -> None:
    result: TaskResult[None, TaskError] = TaskResult(ok=None)
    assert result.is_ok()
    assert not result.is_err()
    assert result.ok_value is None
    assert result.err is None
    with pytest.raises(ValueError, match="is ok"):
        _ = result.err_value


def test_task_result_err_side() -> None:
    error = TaskError(error_code="OUT_OF_STOCK", message="gone", data={"sku": 1})
    result: TaskResult[int, TaskError] = TaskResult(err=error)
    assert result.is_err()
    assert result.err_value == error
    assert result.ok is None
    with pytest.raises(ValueError, match="is an error"):
        _ = result.ok_value
    assert TaskResult(err=error) == result
    assert TaskResult(ok=1) != TaskResult(ok=2)


@pytest.mark.parametrize("code", sorted(BUILTIN_CODES))
def test_task_error_refuses_builtin_code_as_plain_string(code: str) -> None:
    member = BUILTIN_CODES[code]
    with pytest.raises(ValidationError, match="built-in error code") as info:
        TaskError(error_code=code, message="mine")
    assert f"{type(member).__name__}.{member.name}" in str(info.value)
    assert TaskError(error_code=member).error_code is member


def test_task_error_user_code_and_stored_round_trip() -> None:
    mine = TaskError(error_code="PAYMENT_DECLINED", message="card", data={"n": [1, 2]})
    assert TaskError.from_stored(mine.to_stored()) == mine
    builtin = TaskError(error_code=OperationalErrorCode.TASK_TIMEOUT, message="slow")
    stored = builtin.to_stored()
    assert stored["error_code"] == "TASK_TIMEOUT"
    rebuilt = TaskError.from_stored(stored)
    assert rebuilt.error_code is OperationalErrorCode.TASK_TIMEOUT
    horsies: str = OutcomeCode.TASK_TIMEOUT
    assert horsies == rebuilt.error_code  # horsies' spelling of the same code


def test_code_enums_are_distinct_and_complete() -> None:
    assert {c.value for c in TaskSendErrorCode} == {
        "SEND_SUPPRESSED", "VALIDATION_FAILED", "ENQUEUE_FAILED", "PAYLOAD_MISMATCH",
        "PAYLOAD_TOO_LARGE", "ASYNC_CONTEXT",
    }  # fmt: skip
    assert "UNHANDLED_EXCEPTION" in {c.value for c in OperationalErrorCode}
    assert "TASK_TIMEOUT" in {c.value for c in OperationalErrorCode}
    assert {"WAIT_TIMEOUT", "TASK_NOT_FOUND"} <= {c.value for c in RetrievalCode}
    assert {c.value for c in OutcomeCode} == {
        "TASK_CANCELLED", "TASK_EXPIRED", "TASK_TIMEOUT", "WORKFLOW_PAUSED", "WORKFLOW_FAILED",
        "WORKFLOW_CANCELLED", "WORKFLOW_EXPIRED", "UPSTREAM_SKIPPED", "SUBWORKFLOW_FAILED",
        "WORKFLOW_SUCCESS_CASE_NOT_MET",
    }  # fmt: skip
    assert "RETURN_TYPE_MISMATCH" in {c.value for c in ContractCode}
    families = [OperationalErrorCode, ContractCode, RetrievalCode, OutcomeCode]
    total = sum(len(list(f)) for f in families)
    assert len(BUILTIN_CODES) == total - 1  # only TASK_TIMEOUT is spelled in two families


def test_task_timeout_has_both_spellings_and_they_are_one_code() -> None:
    horsies: str = OutcomeCode.TASK_TIMEOUT
    ours: str = OperationalErrorCode.TASK_TIMEOUT
    assert horsies == ours == "TASK_TIMEOUT"
    assert hash(horsies) == hash(ours) == hash("TASK_TIMEOUT")
    assert {horsies: 1}[ours] == 1
    assert BUILTIN_CODES["TASK_TIMEOUT"] is OperationalErrorCode.TASK_TIMEOUT
    assert builtin_code("TASK_TIMEOUT") is OperationalErrorCode.TASK_TIMEOUT
    assert check_user_code(horsies, where="x") == check_user_code(ours, where="x") == "TASK_TIMEOUT"
    for member in (horsies, ours):
        error = TaskError(error_code=member, message="slow")
        assert error.error_code is member  # the spelling the caller chose is kept
        assert error.to_stored()["error_code"] == "TASK_TIMEOUT"
        assert TaskError.from_stored(error.to_stored()).error_code == horsies
    with pytest.raises(ValidationError, match="built-in error code"):
        TaskError(error_code="TASK_TIMEOUT")
    match TaskError.from_stored({"error_code": "TASK_TIMEOUT"}).error_code:
        case OutcomeCode.TASK_TIMEOUT:  # a horsies user's match statement still matches
            matched = "horsies"
        case _:
            matched = "neither"
    assert matched == "horsies"


@pytest.mark.parametrize(
    ("written", "suggested"),
    [
        ("TimeoutError", "TIMEOUT_ERROR"),
        ("ValueError", "VALUE_ERROR"),
        ("builtins.ConnectionResetError", "CONNECTION_RESET_ERROR"),
        ("requests.exceptions.HTTPError", "HTTP_ERROR"),
        ("StopIteration", "STOP_ITERATION"),
        (KeyError, "KEY_ERROR"),
    ],
)
def test_an_exception_class_given_as_a_code_gets_a_hint(written: object, suggested: str) -> None:
    with pytest.raises(ValueError, match="names an exception class") as info:
        check_user_code(written, where="somewhere")
    message = str(info.value)
    assert f"exception_mapper={{{exception_class_name(written)}: {suggested!r}}}" in message
    assert "HORSIES['EXCEPTION_MAPPER']" in message


def test_terminal_states() -> None:
    assert (
        frozenset(
            {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.EXPIRED}
        )
        == TASK_TERMINAL_STATES
    )
    for status in TaskStatus:
        assert status.is_terminal == (status in TASK_TERMINAL_STATES)
    assert not TaskStatus.PENDING.is_terminal
    assert not TaskStatus.RUNNING.is_terminal
    assert TaskStatus("COMPLETED").is_terminal


@pytest.mark.parametrize("bad", ["timeout", "Timeout", "1ABC", "A__B", "A-B", "", 3, None])
def test_user_codes_must_be_upper_snake(bad: object) -> None:
    with pytest.raises(ValueError, match="UPPER_SNAKE_CASE"):
        check_user_code(bad, where="here")


def test_user_codes_accept_upper_snake_and_members() -> None:
    assert check_user_code("RATE_LIMITED_2", where="x") == "RATE_LIMITED_2"
    assert check_user_code(OperationalErrorCode.TASK_TIMEOUT, where="x") == "TASK_TIMEOUT"
