"""`TaskHandle.info()` / `info_async()` and `TaskHandle.from_id()` against real workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from horsies_django import TaskHandle, TaskInfo, TaskStatus
from tests.conftest import WorkerProcess, sql_rows
from tests.testapp.tasks import Order, add, domain_error, flaky, total_order

pytestmark = pytest.mark.usefixtures("clean_tables")

LONG_MS = 60_000


def info_of(handle: TaskHandle[Any], **flags: bool) -> TaskInfo:
    info = handle.info(**flags).ok_value
    assert info is not None
    return info


def test_info_of_a_pending_task() -> None:
    handle = add.send(a=1, b=1).ok_value
    info = info_of(handle, include_result=True, include_failed_reason=True, include_attempts=True)
    assert (info.task_id, info.task_name, info.status) == (handle.task_id, "tests.add", "PENDING")
    assert (info.queue_name, info.priority, info.retry_count) == ("default", 50, 0)
    assert info.sent_at == info.enqueued_at
    assert (info.claimed_at, info.started_at, info.finished_at, info.worker_id) == (None,) * 4
    assert info.result is None
    assert info.failed_reason is None
    assert info.attempts == []


def test_info_of_a_completed_task_shows_only_what_was_asked(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker()
    handle = add.send(a=2, b=3).ok_value
    assert handle.get(timeout_ms=LONG_MS).ok_value == 5

    bare = info_of(handle)
    assert bare.status == TaskStatus.COMPLETED
    assert bare.worker_id == worker.worker_id()
    assert bare.sent_at <= bare.claimed_at <= bare.started_at <= bare.finished_at  # type: ignore[operator]
    assert bare.error_code is None
    assert (bare.result, bare.failed_reason, bare.attempts) == (None, None, None)

    full = info_of(handle, include_result=True, include_attempts=True)
    assert full.result is not None
    assert full.result.ok_value == 5
    assert full.attempts is not None
    [attempt] = full.attempts
    assert (attempt.attempt, attempt.outcome, attempt.will_retry) == (1, "COMPLETED", False)
    assert attempt.worker_id == worker.worker_id()
    assert attempt.worker_pid not in (None, worker.pid)

    assert async_to_sync(handle.info_async)(include_result=True, include_attempts=True) == (
        handle.info(include_result=True, include_attempts=True)
    )


def test_info_of_a_failed_task_gives_the_reason_only_when_asked(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()
    handle = domain_error.send(reason="no stock left").ok_value
    assert handle.get(timeout_ms=LONG_MS).err_value.error_code == "OUT_OF_STOCK"

    bare = info_of(handle)
    assert (bare.status, bare.error_code, bare.failed_reason) == ("FAILED", "OUT_OF_STOCK", None)
    with_reason = info_of(handle, include_failed_reason=True, include_result=True)
    assert with_reason.failed_reason == "no stock left"
    assert with_reason.result is not None
    assert with_reason.result.err_value.error_code == "OUT_OF_STOCK"
    assert with_reason.result.err_value.data == {"r": "no stock left"}

    from_async = async_to_sync(handle.info_async)(include_failed_reason=True)
    assert from_async.ok_value is not None
    assert from_async.ok_value.failed_reason == "no stock left"


def test_attempts_are_listed_newest_first(
    start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    worker = start_worker()
    handle = flaky.send(counter=str(tmp_path / "calls"), failures=2).ok_value
    assert handle.get(timeout_ms=LONG_MS).ok_value == 3

    info = info_of(handle, include_attempts=True)
    assert info.retry_count == 2
    assert info.attempts is not None
    assert [a.attempt for a in info.attempts] == [3, 2, 1]
    assert [a.outcome for a in info.attempts] == ["COMPLETED", "FAILED", "FAILED"]
    assert [a.will_retry for a in info.attempts] == [False, True, True]
    assert [a.error_code for a in info.attempts] == [None, "TIMEOUT", "TIMEOUT"]
    assert [a.error_message for a in info.attempts] == [
        None,
        "call 2 timed out",
        "call 1 timed out",
    ]
    finished = [a.finished_at for a in info.attempts]
    assert finished == sorted(finished, reverse=True)  # type: ignore[type-var]
    assert {a.worker_id for a in info.attempts} == {worker.worker_id()}
    from_async = async_to_sync(handle.info_async)(include_attempts=True).ok_value
    assert from_async is not None
    assert from_async.attempts == info.attempts
    assert sql_rows(
        "SELECT count(*) FROM horsies_task_attempt WHERE task_id = %s", handle.task_id
    ) == [(3,)]


def test_from_id_rebuilds_a_typed_handle(start_worker: Callable[..., WorkerProcess]) -> None:
    start_worker()
    sent = total_order.send(order=Order(order_id=9, items=["x"])).ok_value
    rebuilt = TaskHandle.from_id(sent.task_id)
    assert rebuilt.task_id == sent.task_id
    result = rebuilt.get(timeout_ms=LONG_MS).ok_value
    assert isinstance(result, Order)
    assert result == Order(order_id=9, items=["x", "checked"])
    info = info_of(TaskHandle.from_id(sent.task_id), include_result=True)
    assert info.task_name == "tests.total_order"
    assert info.result is not None
    assert info.result.ok_value == result
