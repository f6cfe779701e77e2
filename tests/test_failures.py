"""Failure semantics with real workers: retries, mapping, timeouts, good_until, cancellation."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from horsies_django import (
    ContractCode,
    OperationalErrorCode,
    OutcomeCode,
    TaskHandle,
    TaskSendErrorCode,
    TaskSendOptions,
    TaskStatus,
)
from tests.conftest import WorkerProcess, sql_rows, sql_value, wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.usefixtures("clean_tables")

StartWorker = Callable[..., WorkerProcess]


def attempts(task_id: str) -> list[tuple[Any, ...]]:
    return sql_rows(
        "SELECT attempt, outcome, will_retry, error_code, traceback IS NOT NULL, worker_id"
        " FROM horsies_task_attempt WHERE task_id = %s ORDER BY attempt",
        task_id,
    )


def test_retry_until_success_records_each_attempt(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    start_worker()
    handle = tasks.flaky.send(counter=str(tmp_path / "c"), failures=2).ok_value
    result = handle.get(timeout_ms=30_000)
    assert result.ok_value == 3
    rows = attempts(handle.task_id)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (1, "FAILED", True, "TIMEOUT"),
        (2, "FAILED", True, "TIMEOUT"),
        (3, "COMPLETED", False, None),
    ]
    info = handle.info(include_attempts=True).ok_value
    assert info is not None
    assert info.status == TaskStatus.COMPLETED
    assert info.retry_count == 2
    assert info.error_code is None
    assert [a.attempt for a in info.attempts or []] == [3, 2, 1]


def test_exhausted_policy_fails_with_the_last_code(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    start_worker()
    handle = tasks.flaky.send(counter=str(tmp_path / "c"), failures=10).ok_value
    result = handle.get(timeout_ms=30_000)
    assert result.err_value.error_code == "TIMEOUT"
    rows = attempts(handle.task_id)
    assert [r[2] for r in rows] == [True, True, True, False]
    info = handle.info().ok_value
    assert info is not None
    assert (info.status, info.error_code, info.retry_count) == (TaskStatus.FAILED, "TIMEOUT", 3)


def test_retry_is_picked_up_by_a_timed_wakeup_not_the_poll(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    overrides = {"POLL_INTERVAL_MS": 600_000}  # no poll within the test
    start_worker(env={"HORSIES_TEST_OVERRIDES": json.dumps(overrides)})
    handle = tasks.flaky.send(counter=str(tmp_path / "c"), failures=1).ok_value
    assert handle.get(timeout_ms=120_000).ok_value == 2
    first, second = sql_rows(
        "SELECT started_at, finished_at FROM horsies_task_attempt WHERE task_id = %s"
        " ORDER BY attempt",
        handle.task_id,
    )
    gap = (second[0] - first[1]).total_seconds()
    assert 0.9 <= gap < 300, gap  # the backoff (1 s) passed; far less than the poll interval


def test_builtin_codes_retry_only_when_listed(start_worker: StartWorker, tmp_path: Path) -> None:
    start_worker()
    listed = tasks.unhandled_retry.send(counter=str(tmp_path / "a")).ok_value
    unlisted = tasks.boom.send().ok_value
    assert listed.get(timeout_ms=30_000).err_value.error_code == "UNHANDLED_EXCEPTION"
    assert [r[2] for r in attempts(listed.task_id)] == [True, True, False]
    assert unlisted.get(timeout_ms=30_000).err_value.error_code == "UNHANDLED_EXCEPTION"
    assert [(r[2], r[4]) for r in attempts(unlisted.task_id)] == [(False, True)]


def test_retry_after_good_until_is_not_scheduled(start_worker: StartWorker, tmp_path: Path) -> None:
    start_worker()
    # Below the 30 s backoff, so the retry would come after good_until however soon or late
    # the first attempt ends; far enough for the first attempt to start on a slow machine.
    deadline = timezone.now() + timedelta(seconds=25)
    sent = tasks.flaky_slow_retry.with_options(TaskSendOptions(good_until=deadline)).send(
        counter=str(tmp_path / "c")
    )
    result = sent.ok_value.get(timeout_ms=60_000)
    assert result.err_value.error_code == "TIMEOUT"
    assert [r[2] for r in attempts(sent.ok_value.task_id)] == [False]


def test_exception_mapping_resolution_order(start_worker: StartWorker, tmp_path: Path) -> None:
    overrides = {"EXCEPTION_MAPPER": {"builtins.KeyError": "KEY_MISSING"}}
    start_worker(env={"HORSIES_TEST_OVERRIDES": json.dumps(overrides)})
    per_task = tasks.mapped.send(counter=str(tmp_path / "m")).ok_value
    global_map = tasks.defaulted.send(kind="key").ok_value
    task_default = tasks.defaulted.send(kind="runtime").ok_value
    assert per_task.get(timeout_ms=20_000).ok_value == "reconnected"
    assert [r[3] for r in attempts(per_task.task_id)] == ["CONN_LOST", None]
    assert global_map.get(timeout_ms=20_000).err_value.error_code == "KEY_MISSING"
    assert task_default.get(timeout_ms=20_000).err_value.error_code == "TASK_DEFAULT_CODE"


def test_global_default_unhandled_code(start_worker: StartWorker) -> None:
    overrides = {"DEFAULT_UNHANDLED_ERROR_CODE": "BOOM_DEFAULT"}
    start_worker(env={"HORSIES_TEST_OVERRIDES": json.dumps(overrides)})
    handle = tasks.boom.send().ok_value
    assert handle.get(timeout_ms=20_000).err_value.error_code == "BOOM_DEFAULT"


def test_timeout_kills_only_the_hung_child(start_worker: StartWorker, tmp_path: Path) -> None:
    worker = start_worker("--processes", "3")
    children_before = set(worker.child_pids())
    hung = tasks.hang.send(marker=str(tmp_path / "h")).ok_value
    long_a = tasks.sleep_for.send(seconds=3.0).ok_value
    long_b = tasks.sleep_for.send(seconds=3.0).ok_value
    assert hung.get(timeout_ms=20_000).err_value.error_code == OperationalErrorCode.TASK_TIMEOUT
    assert long_a.get(timeout_ms=20_000).ok_value == "slept"
    assert long_b.get(timeout_ms=20_000).ok_value == "slept"
    (row,) = attempts(hung.task_id)
    assert row[1] == "TIMED_OUT"
    wait_until(lambda: len(worker.child_pids()) == 3, what="replacement child")
    assert len(children_before - set(worker.child_pids())) == 1
    assert tasks.add.send(a=1, b=1).ok_value.get(timeout_ms=20_000).ok_value == 2


def test_timeout_retries_when_listed(start_worker: StartWorker, tmp_path: Path) -> None:
    start_worker()
    handle = tasks.hang_retry.send(counter=str(tmp_path / "c")).ok_value
    assert handle.get(timeout_ms=20_000).ok_value == "second time lucky"
    assert [(r[1], r[2], r[3]) for r in attempts(handle.task_id)] == [
        ("TIMED_OUT", True, "TASK_TIMEOUT"),
        ("COMPLETED", False, None),
    ]


def test_naive_good_until_is_refused() -> None:
    naive = timezone.now().replace(tzinfo=None)
    result = tasks.add.with_options(TaskSendOptions(good_until=naive)).send(a=1, b=2)
    assert result.err_value.code == TaskSendErrorCode.VALIDATION_FAILED
    assert "naive" in result.err_value.message
    assert sql_value("SELECT count(*) FROM horsies_task") == 0


def test_pending_task_past_good_until_expires_without_running(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    deadline = timezone.now() + timedelta(seconds=1)
    handle = (
        tasks.record.with_options(TaskSendOptions(good_until=deadline))
        .schedule(3, path=str(marker), token="x")
        .ok_value
    )
    start_worker()
    result = handle.get(timeout_ms=20_000)
    assert result.err_value.error_code == OutcomeCode.TASK_EXPIRED
    assert sql_value("SELECT status FROM horsies_task WHERE id = %s", handle.task_id) == "EXPIRED"
    assert attempts(handle.task_id) == []
    assert not marker.exists()


def test_claimed_task_past_good_until_expires(start_worker: StartWorker, tmp_path: Path) -> None:
    """A claim whose worker died before starting it, then past good_until: EXPIRED, no attempt."""
    marker = tmp_path / "ran"
    deadline = timezone.now() + timedelta(milliseconds=300)
    handle = (
        tasks.record.with_options(TaskSendOptions(good_until=deadline))
        .send(path=str(marker), token="x")
        .ok_value
    )
    # Claim it as a worker that never starts it and stops renewing its lease.
    sql_value(
        "UPDATE horsies_task SET status = 'CLAIMED', claim_gen = claim_gen + 1,"
        " claimed_by = gen_random_uuid(), claimed_at = now(),"
        " claim_expires_at = now() + interval '200 milliseconds' WHERE id = %s RETURNING 1",
        handle.task_id,
    )
    # Both the lease and good_until are over before a worker exists: however soon the rescuer
    # looks, the task is past good_until (were it requeued before, a worker would run it).
    wait_until(
        lambda: sql_value(
            "SELECT now() > greatest(good_until, claim_expires_at) FROM horsies_task WHERE id = %s",
            handle.task_id,
        ),
        what="the lease and good_until to pass",
    )
    start_worker()
    assert handle.get(timeout_ms=20_000).err_value.error_code == OutcomeCode.TASK_EXPIRED
    assert attempts(handle.task_id) == []
    assert not marker.exists()


def test_task_held_behind_a_long_task_is_handed_back_and_expires_without_running(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    """While tasks are short, a worker holds tasks ready for its children; one held behind a
    task that turns long is handed back (PENDING, never started), and expires there when its
    good_until passes: no attempt, never run."""
    worker = start_worker("--processes", "1")
    warm = [tasks.noop.send(i=i).ok_value for i in range(10)]  # tasks look short: claim ahead
    assert all(h.get(timeout_ms=20_000).is_ok() for h in warm)
    marker = tmp_path / "ran"
    with transaction.atomic():  # both become visible, and are claimed, together
        long = tasks.sleep_for.send(seconds=1.5).ok_value
        held = (
            tasks.record.with_options(
                TaskSendOptions(good_until=timezone.now() + timedelta(milliseconds=500))
            )
            .send(path=str(marker), token="x")
            .ok_value
        )
    assert held.get(timeout_ms=20_000).err_value.error_code == OutcomeCode.TASK_EXPIRED
    assert long.get(timeout_ms=20_000).ok_value == "slept"
    claimed_by, started_at = sql_rows(
        "SELECT claimed_by::text, started_at FROM horsies_task WHERE id = %s", held.task_id
    )[0]
    assert claimed_by is None  # handed back by the busy worker, expired while PENDING
    assert started_at is None
    assert worker.proc.poll() is None
    assert attempts(held.task_id) == []
    assert not marker.exists()


def test_cancel_before_claim_never_runs(start_worker: StartWorker, tmp_path: Path) -> None:
    marker = tmp_path / "side-effect"
    handle = tasks.record.schedule(1, path=str(marker), token="x").ok_value
    assert handle.cancel().is_ok()
    start_worker()
    probe = tasks.add.send(a=1, b=1).ok_value
    assert probe.get(timeout_ms=20_000).ok_value == 2
    assert handle.get(timeout_ms=1_000).err_value.error_code == OutcomeCode.TASK_CANCELLED
    wait_until(
        lambda: sql_value("SELECT count(*) FROM horsies_task WHERE enqueued_at > now()") == 0,
        what="the cancelled task's eligible time to pass",
    )
    assert tasks.add.send(a=2, b=2).ok_value.get(timeout_ms=20_000).ok_value == 4
    assert not marker.exists()
    assert attempts(handle.task_id) == []


def test_cancel_claimed_task_and_refuse_running_or_finished(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    claimed = tasks.add.send(a=1, b=1).ok_value
    sql_value(
        "UPDATE horsies_task SET status = 'CLAIMED', claim_gen = claim_gen + 1,"
        " claimed_by = gen_random_uuid() WHERE id = %s RETURNING 1",
        claimed.task_id,
    )
    assert claimed.cancel().is_ok()
    assert (
        sql_value("SELECT status FROM horsies_task WHERE id = %s", claimed.task_id) == "CANCELLED"
    )
    assert claimed.get().err_value.error_code == OutcomeCode.TASK_CANCELLED

    start_worker()
    marker = tmp_path / "started"
    running = tasks.sleep_for.send(seconds=2.0, marker=str(marker)).ok_value
    wait_until(lambda: marker.exists(), what="the task to start")
    refused = running.cancel()
    assert refused.is_err()
    assert "RUNNING" in refused.err_value.message or "CLAIMED" not in refused.err_value.message
    assert running.get(timeout_ms=20_000).ok_value == "slept"
    finished = running.cancel()
    assert finished.is_err()
    assert "finished" in finished.err_value.message
    assert TaskHandle.from_id(claimed.task_id).cancel().is_err()


def test_return_value_not_matching_declared_type(start_worker: StartWorker) -> None:
    start_worker()
    handle = tasks.bad_return.send().ok_value
    error = handle.get(timeout_ms=20_000).err_value
    assert error.error_code == ContractCode.RETURN_TYPE_MISMATCH


def test_stored_result_that_no_longer_decodes(start_worker: StartWorker) -> None:
    start_worker()
    handle = tasks.add.send(a=1, b=2).ok_value
    assert handle.get(timeout_ms=20_000).ok_value == 3
    sql_value(
        'UPDATE horsies_task SET result = \'{"ok": "three"}\' WHERE id = %s RETURNING 1',
        handle.task_id,
    )
    fresh = TaskHandle.from_id(handle.task_id)
    error = fresh.get(timeout_ms=5_000).err_value
    assert error.error_code == OperationalErrorCode.RESULT_DESERIALIZATION_ERROR


def test_unknown_task_name_fails_and_worker_keeps_running(start_worker: StartWorker) -> None:
    start_worker()
    handle = tasks.add.send(a=1, b=2).ok_value
    handle.get(timeout_ms=20_000)
    ghost = sql_value(
        "INSERT INTO horsies_task (id, task_name, queue_name, priority, status, kwargs, sent_at,"
        " enqueued_at, retry_count, max_retries, options, enqueue_sha, claim_gen)"
        " VALUES (gen_random_uuid(), 'tests.gone', 'default', 50, 'PENDING', '{}', now(), now(),"
        " 0, 0, '{}', '', 0) RETURNING id::text"
    )
    error = TaskHandle.from_id(ghost).get(timeout_ms=20_000).err_value
    assert error.error_code == OperationalErrorCode.WORKER_RESOLUTION_ERROR
    assert tasks.add.send(a=5, b=5).ok_value.get(timeout_ms=20_000).ok_value == 10


def test_child_exit_is_recorded_as_crashed(start_worker: StartWorker, tmp_path: Path) -> None:
    start_worker()
    handle = tasks.exit_child.send(marker=str(tmp_path / "m")).ok_value
    error = handle.get(timeout_ms=20_000).err_value
    assert error.error_code == OperationalErrorCode.WORKER_CRASHED
    ((attempt, outcome, will_retry, code, _tb, worker_id),) = attempts(handle.task_id)
    assert (attempt, outcome, will_retry, code) == (1, "CRASHED", False, "WORKER_CRASHED")
    assert worker_id is not None
    assert tasks.add.send(a=1, b=1).ok_value.get(timeout_ms=20_000).ok_value == 2
