"""Django's own task API (`django.tasks`) on horsies_django, as a project switching from
django-tasks-db would use it: only `TASKS` names our backend (tests/settings.py).

Everything goes through Django's public API (`task.enqueue()`, `aenqueue()`,
`TaskResult.refresh()`, `get_result()`, `check_tasks()`); the tasks run on real `horsies_worker`
processes against the real database. Waits poll `refresh()` with a deadline. Points 6-8 of
issue 18; docs/django-tasks.md is executed by tests/test_docs.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.tasks import TaskResult, TaskResultStatus, default_task_backend, task_backends
from django.tasks.checks import check_tasks
from django.tasks.exceptions import (
    InvalidTask,
    InvalidTaskBackend,
    TaskResultDoesNotExist,
    TaskResultMismatch,
)
from django.test import Client, override_settings
from django.utils import timezone

from horsies_django import TaskError as HorsiesTaskError
from horsies_django import TaskResult as HorsiesTaskResult
from horsies_django import app
from horsies_django.exceptions import TaskDefinitionError
from horsies_django.testing import run_pending
from tests.conftest import WorkerProcess, wait_until
from tests.testapp import tasks as horsies_tasks
from tests.testapp.django_tasks import (
    PaymentDeclinedError,
    add,
    add_async,
    attempt_number,
    decline,
    echo,
    returns_an_object,
    sleep,
)
from tests.worker_helpers import StartWorker, configured_workers

BACKEND = "horsies_django.backends.HorsiesBackend"
RETRY_ANY_EXCEPTION = {
    "max_retries": 1,
    "intervals": [1],
    "jitter": False,
    "auto_retry_for": ["UNHANDLED_EXCEPTION"],
}
CUSTOM_QUEUES = {
    "QUEUE_MODE": "CUSTOM",
    "CUSTOM_QUEUES": [{"name": "default", "priority": 1}, {"name": "bulk", "priority": 5}],
}
TASKS_URL = "/admin/horsies_django/task/"

type Worker = Callable[..., WorkerProcess]


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[StartWorker]:
    yield from configured_workers(tmp_path)


def tasks_setting(**params: Any) -> dict[str, Any]:
    return {"default": {"BACKEND": BACKEND, **params}}


def finished(result: TaskResult[..., Any], timeout_s: float = 60) -> TaskResult[..., Any]:
    """`result`, refreshed until the worker has finished it."""

    def done() -> bool:
        result.refresh()
        return result.is_finished

    wait_until(done, timeout_s=timeout_s, what=f"task {result.id} to finish")
    return result


def tasks_checks() -> dict[str, str]:
    """What django.tasks' own system check (every backend's `check()`) reports, by id."""
    return {str(m.id): m.msg for m in check_tasks()}


# --------------------------------------------------------------------------- the switch


def test_tasks_setting_selects_the_backend_and_its_features() -> None:
    backend = task_backends["default"]
    assert f"{type(backend).__module__}.{type(backend).__qualname__}" == BACKEND
    assert backend.supports_defer
    assert backend.supports_priority
    assert backend.supports_get_result
    assert backend.supports_async_task
    assert add.get_backend() is backend


def test_django_tasks_system_checks_pass() -> None:
    assert list(check_tasks()) == []


def test_checks_report_bad_options_and_queues_and_enqueue_refuses_bad_options() -> None:
    bad = tasks_setting(
        QUEUES=["default", "nope"], OPTIONS={"TIMEOUT_MS": 5, "RETRIES": 3, "RETRY_POLICY": 1}
    )
    with override_settings(TASKS=bad):
        found = tasks_checks()
        assert set(found) == {"horsies_django.E102", "horsies_django.E103"}
        assert "TIMEOUT_MS" in found["horsies_django.E102"]
        assert "RETRIES" in found["horsies_django.E102"]
        assert "RETRY_POLICY" in found["horsies_django.E102"]
        assert "'nope'" in found["horsies_django.E103"]
        with pytest.raises(InvalidTaskBackend, match="OPTIONS"):
            add.enqueue(1, 2)
    installed = [a for a in settings.INSTALLED_APPS if a != "horsies_django"]
    with override_settings(INSTALLED_APPS=installed):
        assert set(tasks_checks()) == {"horsies_django.E101"}


def test_queue_names_are_the_queues_of_horsies() -> None:
    with pytest.raises(InvalidTask, match="'bulk'"):
        add.using(queue_name="bulk")  # DEFAULT mode: the one queue is "default"
    custom = {**settings.HORSIES, **CUSTOM_QUEUES}
    with override_settings(HORSIES=custom):
        assert add.using(queue_name="bulk").queue_name == "bulk"
        with pytest.raises(InvalidTask, match="'critical'"):
            add.using(queue_name="critical")
    with override_settings(HORSIES=custom, TASKS=tasks_setting(QUEUES=["bulk"])):
        with pytest.raises(InvalidTask, match="'default'"):
            add.using(queue_name="default")  # a queue of HORSIES, not of this backend
        assert tasks_checks() == {}


def test_a_task_name_of_django_tasks_cannot_be_registered_with_app_task() -> None:
    with pytest.raises(TaskDefinitionError, match="reserved"):

        @app.task("django.tasks:shop.tasks.refund")
        def refund() -> HorsiesTaskResult[None, HorsiesTaskError]:
            return HorsiesTaskResult(ok=None)


# --------------------------------------------------------------------------- running


@pytest.mark.usefixtures("clean_tables")
def test_enqueued_tasks_run_on_a_worker_and_read_back(start_worker: Worker) -> None:
    worker = start_worker()
    summed = add.enqueue(2, 3)
    echoed = echo.enqueue(1, "two", [3], key={"nested": [True, None]})
    assert summed.status == TaskResultStatus.READY
    assert summed.enqueued_at is not None
    assert summed.started_at is None
    assert summed.args == [2, 3]
    assert summed.kwargs == {}
    with pytest.raises(ValueError, match="not finished"):
        summed.return_value  # noqa: B018

    assert finished(summed).status == TaskResultStatus.SUCCESSFUL
    assert summed.return_value == 5
    assert summed.errors == []
    assert summed.attempts == 1
    assert summed.worker_ids == [worker.worker_id()]
    assert summed.enqueued_at is not None
    assert summed.started_at is not None
    assert summed.finished_at is not None
    assert summed.last_attempted_at is not None
    assert summed.enqueued_at <= summed.started_at <= summed.finished_at
    assert finished(echoed).return_value["args"] == [1, "two", [3]]
    assert echoed.return_value["kwargs"] == {"key": {"nested": [True, None]}}
    assert echoed.return_value["pid"] in worker.child_pids()

    fetched = default_task_backend.get_result(summed.id)
    assert (fetched.id, fetched.status, fetched.return_value) == (summed.id, "SUCCESSFUL", 5)
    assert (fetched.args, fetched.backend) == ([2, 3], "default")
    assert fetched.worker_ids == summed.worker_ids
    assert add.get_result(summed.id).task.func is add.func
    with pytest.raises(TaskResultMismatch):
        echo.get_result(summed.id)


@pytest.mark.usefixtures("clean_tables")
def test_a_raised_exception_fails_the_task_with_its_class_and_traceback(
    start_worker: Worker,
) -> None:
    start_worker()
    declined = finished(decline.enqueue("card expired"))
    assert declined.status == TaskResultStatus.FAILED
    [error] = declined.errors
    assert error.exception_class is PaymentDeclinedError
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert "PaymentDeclinedError: card expired" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        declined.return_value  # noqa: B018

    not_json = finished(returns_an_object.enqueue())
    assert not_json.status == TaskResultStatus.FAILED
    assert not_json.errors[0].exception_class is TypeError
    assert "Unsupported type" in not_json.errors[0].traceback


def test_arguments_must_be_json() -> None:
    with pytest.raises(TypeError, match="Unsupported type"):
        echo.enqueue(object(), 1)
    with pytest.raises(ValueError, match="NaN"):
        echo.enqueue(float("nan"), 1)  # what jsonb would not give back
    with pytest.raises(ValueError, match="NUL"):
        echo.enqueue("a\x00b")


@pytest.mark.usefixtures("clean_tables")
def test_async_tasks_aenqueue_arefresh_and_aget_result(start_worker: Worker) -> None:
    start_worker()

    async def scenario() -> tuple[Any, ...]:
        result = await add_async.aenqueue(20, 22)
        for _ in range(3_000):  # bounded: 60 s of 20 ms polls
            await result.arefresh()
            if result.is_finished:
                break
            await asyncio.sleep(0.02)  # polling interval of a bounded wait
        fetched = await default_task_backend.aget_result(result.id)
        return result.status, result.return_value, fetched.return_value

    assert asyncio.run(scenario()) == (TaskResultStatus.SUCCESSFUL, 42, 42)


@pytest.mark.usefixtures("clean_tables")
def test_enqueue_inside_atomic_is_part_of_the_transaction(start_worker: Worker) -> None:
    start_worker()
    with transaction.atomic():
        ghost = add.enqueue(1, 1)
        transaction.set_rollback(True)  # e.g. the order failed to save
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(ghost.id)
    with transaction.atomic():
        kept = add.enqueue(2, 2)
        assert default_task_backend.get_result(kept.id).status == TaskResultStatus.READY
    assert finished(kept).return_value == 4


@pytest.mark.usefixtures("clean_tables")
def test_run_after_defers_and_priority_orders(start_worker: Worker) -> None:
    run_after = timezone.now() + timedelta(seconds=1)
    later = add.using(run_after=run_after).enqueue(3, 4)
    low = echo.using(priority=-50).enqueue("low")
    default = echo.enqueue("default")
    high = echo.using(priority=90).enqueue("high")
    start_worker("--processes", "1")  # one child: tasks start in claim order
    results = [finished(r) for r in (low, default, high, later)]
    starts = sorted((r.started_at, r.args[0]) for r in results[:3])
    assert [name for _, name in starts] == ["high", "default", "low"]
    assert later.started_at is not None
    assert later.started_at >= run_after
    assert later.return_value == 7
    fetched = default_task_backend.get_result(later.id)
    assert fetched.task.run_after == run_after
    assert default_task_backend.get_result(high.id).task.priority == 90


@pytest.mark.usefixtures("clean_tables")
def test_a_task_on_another_queue_runs_on_a_worker_of_that_queue(configured: StartWorker) -> None:
    custom = {**settings.HORSIES, **CUSTOM_QUEUES}
    with override_settings(HORSIES=custom, TASKS=tasks_setting(QUEUES=["default", "bulk"])):
        # No task modules of @app.task: the test apps' are declared for DEFAULT mode.
        configured({**CUSTOM_QUEUES, "TASK_MODULES": []}, "--queues", "bulk", "--processes", "1")
        bulk = add.using(queue_name="bulk").enqueue(5, 5)
        assert finished(bulk).return_value == 10
        assert default_task_backend.get_result(bulk.id).task.queue_name == "bulk"


# --------------------------------------------------------------------------- retries, timeouts


@pytest.mark.usefixtures("clean_tables")
def test_options_retry_and_the_context_counts_attempts(start_worker: Worker) -> None:
    start_worker()
    with override_settings(TASKS=tasks_setting(OPTIONS={"RETRY_POLICY": RETRY_ANY_EXCEPTION})):
        result = attempt_number.enqueue(succeed_on=2)
        assert finished(result).status == TaskResultStatus.SUCCESSFUL
        assert result.return_value == {
            "attempt": 2,
            "id": result.id,
            "args": [],
            "kwargs": {"succeed_on": 2},
        }
        assert result.attempts == 2
        assert len(result.worker_ids) == 2
        [error] = result.errors  # the first attempt's
        assert error.exception_class is RuntimeError
        assert "attempt 1 fails on purpose" in error.traceback

        gives_up = finished(attempt_number.enqueue(succeed_on=5))
        assert gives_up.status == TaskResultStatus.FAILED
        assert [e.exception_class for e in gives_up.errors] == [RuntimeError, RuntimeError]
    no_retries = finished(attempt_number.enqueue(succeed_on=2))  # the settings' backend
    assert no_retries.status == TaskResultStatus.FAILED
    assert no_retries.attempts == 1


@pytest.mark.usefixtures("clean_tables")
def test_options_timeout_stops_a_task_that_runs_too_long(start_worker: Worker) -> None:
    start_worker()
    with override_settings(TASKS=tasks_setting(OPTIONS={"TIMEOUT_MS": 1_000})):
        result = finished(sleep.enqueue(60))
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class_path == "horsies_django.exceptions.TaskFailedError"
    assert error.traceback.startswith("TASK_TIMEOUT: ")


# --------------------------------------------------------------------------- reading


@pytest.mark.usefixtures("clean_tables")
def test_get_result_of_what_is_not_a_django_task_does_not_exist() -> None:
    for missing in ("01900000-0000-7000-8000-000000000000", "not-a-uuid", "'; DROP TABLE x"):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(missing)
    ours = horsies_tasks.add.send(a=1, b=2).ok_value  # a task of @app.task: not a django one
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(ours.task_id)
    with transaction.atomic():  # an unknown id does not break the caller's transaction
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result("not-a-uuid")
        assert default_task_backend.get_result(add.enqueue(1, 1).id).args == [1, 1]


@pytest.mark.usefixtures("clean_tables")
def test_eager_mode_and_run_pending_run_django_tasks_in_process() -> None:
    with override_settings(HORSIES={**settings.HORSIES, "EAGER": True}):
        eager = add.enqueue(6, 7)
    assert eager.status == TaskResultStatus.SUCCESSFUL
    assert eager.return_value == 13
    waiting = attempt_number.enqueue(succeed_on=1)
    [ran] = run_pending()
    assert ran.task_id == waiting.id
    waiting.refresh()
    assert waiting.return_value["attempt"] == 1


# --------------------------------------------------------------------------- admin, status


@pytest.mark.usefixtures("clean_tables")
def test_tasks_show_in_the_admin_and_horsies_status(
    start_worker: Worker, admin_client: Client
) -> None:
    start_worker()
    declined = finished(decline.enqueue("insufficient funds"))
    scheduled = add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 2)

    listing = admin_client.get(TASKS_URL).content.decode()
    assert "django.tasks:tests.testapp.django_tasks.decline" in listing
    assert "django.tasks:tests.testapp.django_tasks.add" in listing
    page = admin_client.get(f"{TASKS_URL}{declined.id}/change/").content.decode()
    attempts = page[page.index('id="attempts-group"') :]
    assert "tests.testapp.django_tasks.PaymentDeclinedError: insufficient funds" in attempts
    assert "&quot;insufficient funds&quot;" in page  # the arguments
    assert "django.tasks" in page  # sent by

    out = StringIO()
    call_command("horsies_status", "--json", stdout=out)
    [queue] = json.loads(out.getvalue())["queues"]
    assert (queue["failed_last_hour"], queue["scheduled"]) == (1, 1)
    assert default_task_backend.get_result(scheduled.id).status == TaskResultStatus.READY
