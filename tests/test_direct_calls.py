"""Calling a task function directly (`my_task(x=1)`) gives what a worker run of it gives.

Exceptions are mapped in the worker's order (task mapper, `HORSIES["EXCEPTION_MAPPER"]`, task
default, global default) and returned as `TaskResult(err=...)`; the returned value is checked
(a TaskResult whose ok value matches `T`). The settings are read at call time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from horsies_django import (
    ContractCode,
    OperationalErrorCode,
    TaskError,
    TaskResult,
    app,
)
from horsies_django.registry import TaskFunction
from tests.conftest import WorkerProcess
from tests.testapp import tasks
from tests.testapp.tasks import Order

GLOBAL_MAPPER = {"KeyError": "GLOBAL_KEY", "TimeoutError": "GLOBAL_TIMEOUT"}


class OverloadedError(TimeoutError):
    """A subclass: an exact-class mapper entry for TimeoutError does not match it."""


@pytest.fixture
def raiser() -> Iterator[TaskFunction[..., str]]:
    """A task raising the exception class named by `kind`, with a mapper and a default code."""
    name = f"tests.direct.raiser.{os.getpid()}"
    kinds: dict[str, type[BaseException]] = {
        "timeout": TimeoutError,
        "key": KeyError,
        "runtime": RuntimeError,
        "subclass": OverloadedError,
    }

    @app.task(
        name,
        exception_mapper={TimeoutError: "UPSTREAM_TIMEOUT"},
        default_unhandled_error_code="RAISER_FAILED",
    )
    def raise_it(*, kind: str) -> TaskResult[str, TaskError]:
        raise kinds[kind](f"raised {kind}")

    yield raise_it
    app.unregister(name)


@pytest.fixture
def plain() -> Iterator[TaskFunction[..., str]]:
    """A task with no mapper and no default code: only the global settings apply."""
    name = f"tests.direct.plain.{os.getpid()}"

    @app.task(name)
    def raise_timeout() -> TaskResult[str, TaskError]:
        raise TimeoutError("upstream slow")

    yield raise_timeout
    app.unregister(name)


def code_of(result: TaskResult[Any, TaskError]) -> object:
    assert result.is_err(), result
    return result.err_value.error_code


def with_global(**horsies: Any) -> Any:
    return override_settings(HORSIES={**settings.HORSIES, **horsies})


# --------------------------------------------------------------------------- mapping


def test_an_exception_mapped_by_the_task_is_returned_not_raised(
    raiser: TaskFunction[..., str],
) -> None:
    result = raiser(kind="timeout")
    assert code_of(result) == "UPSTREAM_TIMEOUT"
    error = result.err_value
    assert error.message == f"Unhandled exception in task {raiser.task_name}: TimeoutError: " + (
        "raised timeout"
    )
    assert error.exception == {"type": "builtins.TimeoutError", "message": "raised timeout"}


def test_exceptions_are_mapped_in_the_worker_order(
    raiser: TaskFunction[..., str], plain: TaskFunction[..., str]
) -> None:
    with with_global(EXCEPTION_MAPPER=GLOBAL_MAPPER, DEFAULT_UNHANDLED_ERROR_CODE="GLOBAL_DEFAULT"):
        assert code_of(raiser(kind="timeout")) == "UPSTREAM_TIMEOUT"  # 1. task mapper first
        assert code_of(raiser(kind="key")) == "GLOBAL_KEY"  # 2. then the global mapper
        assert code_of(raiser(kind="runtime")) == "RAISER_FAILED"  # 3. then the task default
        assert code_of(raiser(kind="subclass")) == "RAISER_FAILED"  # exact class only
        assert code_of(plain()) == "GLOBAL_TIMEOUT"
    with with_global(DEFAULT_UNHANDLED_ERROR_CODE="GLOBAL_DEFAULT"):
        assert code_of(plain()) == "GLOBAL_DEFAULT"  # 4. the global default
    unhandled = code_of(plain())
    assert unhandled == OperationalErrorCode.UNHANDLED_EXCEPTION
    assert isinstance(unhandled, OperationalErrorCode)  # a built-in code comes back as its member


def test_override_settings_applies_at_call_time_and_is_undone(
    plain: TaskFunction[..., str],
) -> None:
    assert code_of(plain()) == OperationalErrorCode.UNHANDLED_EXCEPTION
    with with_global(EXCEPTION_MAPPER={"builtins.TimeoutError": "MAPPED_INSIDE"}):
        assert code_of(plain()) == "MAPPED_INSIDE"
    assert code_of(plain()) == OperationalErrorCode.UNHANDLED_EXCEPTION


def test_keyboard_interrupt_and_system_exit_propagate_as_in_a_worker_child() -> None:
    name = f"tests.direct.exit.{os.getpid()}"
    signals: dict[str, type[BaseException]] = {"int": KeyboardInterrupt, "exit": SystemExit}

    @app.task(name)
    def stop(*, how: str) -> TaskResult[None, TaskError]:
        raise signals[how]()

    try:
        with pytest.raises(KeyboardInterrupt):
            stop(how="int")
        with pytest.raises(SystemExit):
            stop(how="exit")
    finally:
        app.unregister(name)


# --------------------------------------------------------------------------- the returned value


def test_an_ok_value_not_matching_the_declared_type_is_a_contract_error() -> None:
    result = tasks.bad_return()
    assert code_of(result) == ContractCode.RETURN_TYPE_MISMATCH
    assert "does not match its declared type" in (result.err_value.message or "")


def test_a_return_that_is_not_a_task_result_is_a_contract_error() -> None:
    result = tasks.not_a_result()
    assert code_of(result) == ContractCode.RETURN_TYPE_MISMATCH
    assert "returned str, not a TaskResult" in (result.err_value.message or "")


def test_a_valid_result_is_returned_as_the_task_built_it() -> None:
    checked = tasks.total_order(order=Order(order_id=3, items=["a"]))
    assert checked == TaskResult(ok=Order(order_id=3, items=["a", "checked"]))
    assert isinstance(checked.ok_value, Order)
    failed = tasks.domain_error(reason="none left")
    assert failed.err_value == TaskError(
        error_code="OUT_OF_STOCK", message="none left", data={"r": "none left"}
    )


# --------------------------------------------------------------------------- same as a worker


CALLS: list[tuple[str, Callable[[Path], TaskResult[Any, TaskError]], Callable[[Path], Any]]] = [
    ("exception", lambda _: tasks.boom(), lambda _: tasks.boom.send()),
    (
        "task-mapper",
        lambda p: tasks.mapped(counter=str(p / "direct")),
        lambda p: tasks.mapped.send(counter=str(p / "sent")),
    ),
    (
        "global-mapper",
        lambda _: tasks.defaulted(kind="key"),
        lambda _: tasks.defaulted.send(kind="key"),
    ),
    (
        "task-default",
        lambda _: tasks.defaulted(kind="runtime"),
        lambda _: tasks.defaulted.send(kind="runtime"),
    ),
    ("ok-not-T", lambda _: tasks.bad_return(), lambda _: tasks.bad_return.send()),
    ("not-a-result", lambda _: tasks.not_a_result(), lambda _: tasks.not_a_result.send()),
    (
        "domain-error",
        lambda _: tasks.domain_error(reason="x"),
        lambda _: tasks.domain_error.send(reason="x"),
    ),
]


@pytest.mark.usefixtures("clean_tables")
def test_a_direct_call_gives_the_error_a_worker_run_gives(
    start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    overrides = {"EXCEPTION_MAPPER": GLOBAL_MAPPER}
    start_worker("--processes", "1", env={"HORSIES_TEST_OVERRIDES": json.dumps(overrides)})
    with with_global(**overrides):
        handles = {name: send(tmp_path).ok_value for name, _, send in CALLS}
        direct = {name: call(tmp_path) for name, call, _ in CALLS}
    for name, handle in handles.items():
        final = handle.get(timeout_ms=60_000)
        info = handle.info(include_attempts=True).ok_value
        assert info is not None
        assert info.attempts
        first = info.attempts[-1]  # tests.mapped retries and then succeeds: compare attempt 1
        here = direct[name].err_value
        assert (here.error_code, here.message) == (first.error_code, first.error_message), name
        if final.is_err():
            there = final.err_value
            assert (here.error_code, here.message, here.exception) == (
                there.error_code,
                there.message,
                there.exception,
            ), name
            assert type(here.error_code) is type(there.error_code), name
