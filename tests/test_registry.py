"""The `@app.task` registration rules, discovery of task modules, and import-time suppression."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

import horsies_django
from horsies_django import (
    Err,
    JsonValue,
    Ok,
    RetryPolicy,
    TaskError,
    TaskResult,
    TaskSendErrorCode,
    app,
    registry,
    sending,
)
from horsies_django.exceptions import TaskDefinitionError
from horsies_django.registry import TaskFunction
from tests.conftest import sql_value
from tests.testapp.tasks import add, noop, record

CUSTOM = {
    "QUEUE_MODE": "CUSTOM",
    "CUSTOM_QUEUES": [{"name": "critical", "priority": 1}, {"name": "bulk", "priority": 2}],
}


@pytest.fixture
def names() -> Iterator[Callable[[str], str]]:
    """Fresh task names for this test; every one is unregistered afterwards."""
    used: list[str] = []

    def fresh(suffix: str) -> str:
        name = f"tests.registry.{suffix}.{len(used)}.{os.getpid()}"
        used.append(name)
        return name

    yield fresh
    for name in used:
        app.unregister(name)


def _rejects(name: str, fn: Callable[..., Any], fix: str, **options: Any) -> str:
    """Register `fn` as `name` expecting a TaskDefinitionError; returns its message."""
    with pytest.raises(TaskDefinitionError) as info:
        app.task(name, **options)(fn)
    message = str(info.value)
    assert repr(name) in message, message
    assert fix in message, message
    assert app.get(name) is None
    return message


# --------------------------------------------------------------------------- decorator


def test_both_decorators_register_a_task_function(names: Callable[[str], str]) -> None:
    first, second = names("app"), names("module")
    assert horsies_django.task == app.task  # the same bound decorator

    @app.task(first)
    def via_app(*, x: int) -> TaskResult[int, TaskError]:
        return TaskResult(ok=x)

    @horsies_django.task(second, timeout_ms=1_000)
    def via_module(*, x: int = 2) -> TaskResult[int, TaskError]:
        """Doubles."""
        return TaskResult(ok=x * 2)

    assert isinstance(via_app, TaskFunction)
    assert isinstance(via_module, TaskFunction)
    assert app.get(first) is via_app.definition
    assert app.get(second) is via_module.definition
    assert via_module.task_name == second
    assert via_module.queue_name == "default"
    assert via_module.__doc__ == "Doubles."
    assert via_module.__name__ == "via_module"
    assert via_module.definition.timeout_ms == 1_000
    assert via_module.definition.required_params == frozenset()
    assert via_app.definition.required_params == frozenset({"x"})


@pytest.mark.django_db
def test_direct_call_runs_in_process_and_writes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    result = record(path=str(marker), token=str(os.getpid()))
    assert result == TaskResult(ok=str(os.getpid()))
    assert marker.read_text() == f"{os.getpid()}\n"  # ran here, synchronously
    assert add(a=2, b=3).ok_value == 5
    assert sql_value("SELECT count(*) FROM horsies_task") == 0


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("def f(a: int) -> TaskResult[int, TaskError]: ...", "'a'"),
        ("def f(a: int, /) -> TaskResult[int, TaskError]: ...", "'a'"),
        ("def f(*, a: int, **rest: int) -> TaskResult[int, TaskError]: ...", "'**rest'"),
        ("def f(*args: int) -> TaskResult[int, TaskError]: ...", "'*args'"),
    ],
)
def test_parameters_must_be_keyword_only(
    names: Callable[[str], str], source: str, shown: str
) -> None:
    scope: dict[str, Any] = {"TaskResult": TaskResult, "TaskError": TaskError}
    exec(source, scope)
    message = _rejects(names("positional"), scope["f"], "after a bare `*`")
    assert f"parameter {shown} is not keyword-only" in message


def test_return_annotation_is_required(names: Callable[[str], str]) -> None:
    def no_annotation(*, x: int):  # type: ignore[no-untyped-def]
        return TaskResult(ok=x)

    _rejects(names("noreturn"), no_annotation, "-> TaskResult[YourType, TaskError]")


@pytest.mark.parametrize("annotation", [int, dict[str, JsonValue], Ok[int], None])
def test_return_annotation_must_be_task_result(
    names: Callable[[str], str], annotation: Any
) -> None:
    def wrong(*, x: int) -> Any:
        return x

    wrong.__annotations__["return"] = annotation
    _rejects(names("wrongreturn"), wrong, "-> TaskResult[YourType, TaskError]")


def test_bare_task_result_annotation_is_accepted(names: Callable[[str], str]) -> None:
    @app.task(names("bare"))
    def bare() -> TaskResult:  # type: ignore[type-arg]
        return TaskResult(ok=1)

    assert bare.definition.return_adapter is None


def test_unresolvable_annotation_names_the_fix(names: Callable[[str], str]) -> None:
    def unresolved(*, x: int) -> TaskResult[int, TaskError]:
        return TaskResult(ok=x)

    unresolved.__annotations__["x"] = "NoSuchType"
    _rejects(names("unresolved"), unresolved, "import the types they name at module level")


def test_duplicate_name_is_refused_and_keeps_the_first(names: Callable[[str], str]) -> None:
    name = names("dup")

    @app.task(name)
    def first(*, x: int) -> TaskResult[int, TaskError]:
        return TaskResult(ok=x)

    def second(*, x: int) -> TaskResult[int, TaskError]:
        return TaskResult(ok=-x)

    with pytest.raises(TaskDefinitionError, match="already registered") as info:
        app.task(name)(second)
    assert "first" in str(info.value)
    assert "second must use another name" in str(info.value)
    assert app.get(name) is first.definition


def test_reimporting_the_same_function_is_not_a_duplicate(names: Callable[[str], str]) -> None:
    name = names("reimport")

    def task_fn(*, x: int) -> TaskResult[int, TaskError]:
        return TaskResult(ok=x)

    app.task(name)(task_fn)
    again = app.task(name)(task_fn)  # what a module reload does
    assert app.get(name) is again.definition


def test_async_def_is_refused(names: Callable[[str], str]) -> None:
    async def coro(*, x: int) -> TaskResult[int, TaskError]:
        return TaskResult(ok=x)

    _rejects(names("async"), coro, "must be plain `def`")


def test_bare_decorator_without_name_is_refused() -> None:
    def fn() -> TaskResult[int, TaskError]:
        return TaskResult(ok=1)

    with pytest.raises(TaskDefinitionError, match=r'@app.task\("my_task"\)'):
        app.task(fn)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "   ", "x" * 256])
def test_task_name_must_be_a_short_non_empty_string(bad: str) -> None:
    def fn() -> TaskResult[int, TaskError]:
        return TaskResult(ok=1)

    with pytest.raises(TaskDefinitionError, match="non-empty string of at most 255"):
        app.task(bad)(fn)


def _plain() -> TaskResult[int, TaskError]:
    return TaskResult(ok=1)


def test_queue_name_in_default_mode(names: Callable[[str], str]) -> None:
    _rejects(names("q"), _plain, "QUEUE_MODE'] = 'CUSTOM'", queue_name="critical")
    explicit = app.task(names("q_default"), queue_name="default")(_plain)
    assert explicit.queue_name == "default"


@override_settings(HORSIES=CUSTOM)
def test_queue_name_in_custom_mode(names: Callable[[str], str]) -> None:
    _rejects(names("q_missing"), _plain, "give queue_name=, one of ['critical', 'bulk']")
    _rejects(names("q_unknown"), _plain, "not in HORSIES['CUSTOM_QUEUES']", queue_name="nope")
    _rejects(names("q_default"), _plain, "not in HORSIES['CUSTOM_QUEUES']", queue_name="default")
    assert app.task(names("q_ok"), queue_name="bulk")(_plain).queue_name == "bulk"


@pytest.mark.parametrize("timeout_ms", [999, 0, -1, True, 1500.0, "2000"])
def test_timeout_ms_must_be_an_int_of_at_least_1000(
    names: Callable[[str], str], timeout_ms: Any
) -> None:
    message = _rejects(names("timeout"), _plain, "must be an int >= 1000", timeout_ms=timeout_ms)
    assert f"timeout_ms={timeout_ms!r}" in message


def test_timeout_ms_1000_is_the_minimum(names: Callable[[str], str]) -> None:
    assert app.task(names("t1000"), timeout_ms=1000)(_plain).definition.timeout_ms == 1000


def test_retry_policy_must_be_a_policy(names: Callable[[str], str]) -> None:
    _rejects(
        names("policy"), _plain, "retry_policy must be a RetryPolicy",
        retry_policy={"max_retries": 3},
    )  # fmt: skip
    policy = RetryPolicy.fixed([1, 2], auto_retry_for=["TIMEOUT"])
    good = app.task(names("policy_ok"), retry_policy=policy)(_plain)
    assert good.definition.max_retries == 2
    assert good.definition.options_snapshot()["retry_policy"]["intervals"] == [1, 2]


def test_exception_mapper_and_default_code_are_checked(names: Callable[[str], str]) -> None:
    _rejects(names("m_key"), _plain, "not an exception class", exception_mapper={"x": "CODE"})
    _rejects(
        names("m_code"), _plain, "UPPER_SNAKE_CASE", exception_mapper={TimeoutError: "timeout"}
    )
    _rejects(names("d_code"), _plain, "UPPER_SNAKE_CASE", default_unhandled_error_code="oops")
    ok = app.task(names("m_ok"), exception_mapper={TimeoutError: "TIMEOUT"})(_plain)
    assert dict(ok.definition.exception_mapper) == {TimeoutError: "TIMEOUT"}


# --------------------------------------------------------------------------- discovery


def test_installed_apps_tasks_were_imported_at_ready() -> None:
    assert app.discovered
    assert "tests.testapp.tasks" in sys.modules
    assert app.get("tests.add") is add.definition
    with override_settings(HORSIES={}):
        discovered = registry.task_module_names()
    assert "tests.testapp.tasks" in discovered
    assert all(importlib.util.find_spec(name) for name in discovered)
    assert "tests.testapp.sends_at_import" not in discovered


def test_task_modules_setting_replaces_autodiscovery() -> None:
    with override_settings(HORSIES={"TASK_MODULES": ["tests.testapp.worker_tasks"]}):
        assert registry.task_module_names() == ["tests.testapp.worker_tasks"]


@pytest.fixture
def sends_at_import() -> Iterator[str]:
    module = "tests.testapp.sends_at_import"
    sys.modules.pop(module, None)
    yield module
    sys.modules.pop(module, None)
    app.unregister("tests.sends_at_import.defined")


@pytest.mark.django_db(transaction=True)
def test_sends_made_while_task_modules_import_are_suppressed(sends_at_import: str) -> None:
    with override_settings(HORSIES={"TASK_MODULES": [sends_at_import]}):
        registry.autodiscover()
    module = sys.modules[sends_at_import]
    assert app.get("tests.sends_at_import.defined") is not None
    results = [
        module.SEND_RESULT,
        module.SCHEDULE_RESULT,
        module.OWN_SEND_RESULT,
        *module.MANY_RESULT,
    ]
    assert len(results) == 5
    for result in results:
        assert isinstance(result, Err), result
        assert result.error.code is TaskSendErrorCode.SEND_SUPPRESSED
        assert not result.error.retryable
        assert result.error.payload is None
        assert "not at module level" in result.error.message
    assert sql_value("SELECT count(*) FROM horsies_task") == 0
    assert not sending.suppressed()  # the window closed again
    assert isinstance(add.send(a=1, b=2), Ok)  # and sends work afterwards
    assert sql_value("SELECT count(*) FROM horsies_task") == 1


@pytest.mark.django_db(transaction=True)
def test_every_send_path_is_suppressed_inside_the_window() -> None:
    async def async_paths() -> list[Any]:
        return [await add.send_async(a=1, b=1)]

    with sending.suppress_sends():
        results: list[Any] = [
            add.send(a=1, b=1),
            add.schedule(1, a=1, b=1),
            add.with_options(horsies_django.TaskSendOptions(priority=1)).send(a=1, b=1),
            *noop.send_many([{"i": 1}]),
            *asyncio.run(async_paths()),
        ]
    assert [r.error.code for r in results] == [TaskSendErrorCode.SEND_SUPPRESSED] * 5
    assert sql_value("SELECT count(*) FROM horsies_task") == 0


def test_a_missing_task_module_is_logged_and_a_broken_one_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    missing = "tests.testapp.no_such_module"
    with override_settings(HORSIES={"TASK_MODULES": [missing]}):
        registry.autodiscover()  # reported by the E009 system check, not a crash at start-up
    assert f"task module {missing} cannot be imported" in caplog.text
    with (
        override_settings(HORSIES={"TASK_MODULES": ["tests.testapp.broken_import"]}),
        pytest.raises(ModuleNotFoundError, match="this_module_does_not_exist"),
    ):
        registry.autodiscover()
    assert not sending.suppressed()
