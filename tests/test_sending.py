"""Sending: validation, encoding, the caller's transaction, outages and exact replays.

Everything runs against real PostgreSQL servers: the dev database, and a throwaway server that
is really stopped to prove that an outage is an `Err`, never an exception.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from horsies_django import (
    Err,
    Ok,
    TaskSendError,
    TaskSendErrorCode,
    TaskSendOptions,
)
from horsies_django.handles import TaskHandle
from horsies_django.types import Result
from tests.conftest import database_url, sql_rows, sql_value
from tests.testapp.tasks import Order, Point, add, echo, move, noop, total_order

type SendResult = Result[TaskHandle[Any], TaskSendError]


pytestmark = pytest.mark.usefixtures("clean_tables")


def ok_id(result: SendResult) -> str:
    assert isinstance(result, Ok), result
    return result.value.task_id


def err(result: SendResult, code: TaskSendErrorCode) -> TaskSendError:
    assert isinstance(result, Err), result
    assert result.error.code is code, result.error
    return result.error


def row(task_id: str, columns: str) -> tuple[Any, ...]:
    rows = sql_rows(f"SELECT {columns} FROM horsies_task WHERE id = %s", task_id)
    assert len(rows) == 1, f"task {task_id}: {len(rows)} rows"
    return rows[0]


def task_count() -> int:
    return int(sql_value("SELECT count(*) FROM horsies_task"))


def kill_django_connection() -> None:
    """Terminate the caller's Django connection on the server, as a PostgreSQL restart would."""
    connection.ensure_connection()
    assert connection.connection is not None
    pid = connection.connection.info.backend_pid
    assert sql_value("SELECT pg_terminate_backend(%s, 10000)", pid) is True


# --------------------------------------------------------------------------- sending


def test_send_inserts_a_pending_row_with_a_uuidv7_id() -> None:
    before = datetime.now(UTC)
    task_id = ok_id(add.send(a=2, b=3))
    status, name, queue, priority, kwargs, sha, sent, eligible, retries = row(
        task_id, "status, task_name, queue_name, priority, kwargs, enqueue_sha, sent_at, "
        "enqueued_at, max_retries",
    )  # fmt: skip
    assert (status, name, queue, priority, kwargs) == (
        "PENDING",
        "tests.add",
        "default",
        50,
        {"a": 2, "b": 3},
    )
    assert len(sha) == 64
    assert int(sha, 16) >= 0
    assert sent == eligible
    assert retries == 0
    parsed = uuid.UUID(task_id)
    assert parsed.version == 7
    millis = int.from_bytes(parsed.bytes[:6], "big")
    assert abs(millis / 1000 - before.timestamp()) < 60


def test_task_ids_are_time_ordered() -> None:
    ids = [ok_id(noop.send(i=i)) for i in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


def test_models_and_dataclasses_are_stored_with_their_type() -> None:
    order_id = ok_id(total_order.send(order=Order(order_id=9, items=["a", "b"])))
    point_id = ok_id(move.send(point=Point(1, 2), dx=3))
    (order_kwargs,) = row(order_id, "kwargs")
    assert order_kwargs == {
        "order": {
            "__horsies_type__": "tests.testapp.tasks:Order",
            "data": {"order_id": 9, "items": ["a", "b"]},
        }
    }
    (point_kwargs,) = row(point_id, "kwargs")
    assert point_kwargs["point"]["__horsies_type__"] == "tests.testapp.tasks:Point"
    assert point_kwargs["dx"] == 3


def test_schedule_delays_eligibility_by_the_server_clock() -> None:
    task_id = ok_id(add.schedule(90, a=1, b=1))
    (delay,) = row(task_id, "extract(epoch FROM enqueued_at - sent_at)")
    assert float(delay) == 90.0
    fractional = ok_id(add.schedule(0.25, a=1, b=1))
    (delay,) = row(fractional, "extract(epoch FROM enqueued_at - sent_at)")
    assert float(delay) == 0.25


def test_with_options_sets_good_until_and_priority() -> None:
    deadline = datetime.now(UTC) + timedelta(minutes=5)
    bound = add.with_options(TaskSendOptions(good_until=deadline, priority=3))
    sent_id = ok_id(bound.send(a=1, b=2))
    scheduled_id = ok_id(bound.schedule(30, a=1, b=2))
    for task_id in (sent_id, scheduled_id):
        good_until, priority = row(task_id, "good_until, priority")
        assert good_until == deadline
        assert priority == 3
    (delay,) = row(scheduled_id, "extract(epoch FROM enqueued_at - sent_at)")
    assert float(delay) == 30.0


@pytest.mark.parametrize(
    ("task", "kwargs", "fragment"),
    [
        (add, {"a": 1}, "missing required argument(s) b"),
        (add, {"a": 1, "b": 2, "c": 3}, "unknown argument(s) c; the task takes a, b"),
        (add, {"a": object(), "b": 1}, "argument a must be int, not <object object at"),
        (add, {"a": float("nan"), "b": 1}, "argument a must be int, not nan (float)"),
        (echo, {"value": object()}, "argument value is a object, which is not JSON"),
        (echo, {"value": float("nan")}, "argument value is nan"),
        (echo, {"value": "x\x00"}, "argument value contains a NUL character"),
        (echo, {"value": [1, {"k": "\ud800"}]}, "argument value[1].k contains a lone surrogate"),
    ],
)
def test_bad_arguments_fail_validation_naming_the_parameter(
    task: Any, kwargs: dict[str, Any], fragment: str
) -> None:
    error = err(task.send(**kwargs), TaskSendErrorCode.VALIDATION_FAILED)
    assert fragment in error.message
    assert error.message.startswith(f"{task.task_name}: ")
    assert not error.retryable
    assert error.task_id is None
    assert error.payload is None
    assert task_count() == 0


def test_positional_arguments_are_refused() -> None:
    error = err(add.send(1, 2), TaskSendErrorCode.VALIDATION_FAILED)  # type: ignore[call-arg]
    assert "keyword-only, e.g. .send(order_id=1)" in error.message
    err(add.schedule(5, 1, b=2), TaskSendErrorCode.VALIDATION_FAILED)  # type: ignore[call-arg]
    assert task_count() == 0


@pytest.mark.parametrize(
    ("delay", "options", "fragment"),
    [
        (-1, TaskSendOptions(), "delay_seconds=-1 must be a finite number"),
        (math.inf, TaskSendOptions(), "delay_seconds=inf"),
        (True, TaskSendOptions(), "delay_seconds=True"),
        ("5", TaskSendOptions(), "delay_seconds='5'"),
        (0, TaskSendOptions(good_until=datetime(2030, 1, 1)), "naive datetime"),
        (0, TaskSendOptions(good_until="tomorrow"), "timezone-aware datetime"),  # type: ignore[arg-type]
        (0, TaskSendOptions(priority=0), "priority=0 must be an int from 1"),
        (0, TaskSendOptions(priority=101), "priority=101"),
        (0, TaskSendOptions(priority=True), "priority=True"),
    ],
)
def test_bad_delay_and_options_fail_validation(
    delay: Any, options: TaskSendOptions, fragment: str
) -> None:
    error = err(
        add.with_options(options).schedule(delay, a=1, b=1), TaskSendErrorCode.VALIDATION_FAILED
    )
    assert fragment in error.message
    assert task_count() == 0


def test_unencodable_model_class_is_a_validation_error() -> None:
    class LocalOrder(Order):
        pass

    error = err(
        total_order.send(order=LocalOrder(order_id=1, items=[])),
        TaskSendErrorCode.VALIDATION_FAILED,
    )
    assert "argument order is a" in error.message
    assert "define it at module level" in error.message
    assert isinstance(error.exception, ValueError)


# --------------------------------------------------------------------------- transactions


def _listener() -> psycopg.Connection[Any]:
    conn = psycopg.connect(database_url(), autocommit=True)
    conn.execute("LISTEN horsies_task_new")
    return conn


def _marker(text: str) -> None:
    """A notification committed by another session, to order against the send's one."""
    sql_value("SELECT pg_notify('horsies_task_new', %s)", text)


def _received(conn: psycopg.Connection[Any], count: int) -> list[str]:
    payloads: list[str] = []
    deadline = time.monotonic() + 30
    while len(payloads) < count and time.monotonic() < deadline:
        payloads += [
            n.payload for n in conn.notifies(timeout=0.5, stop_after=count - len(payloads))
        ]
    return payloads


def test_committed_send_notifies_only_at_commit() -> None:
    with _listener() as listener:
        with transaction.atomic():
            task_id = ok_id(add.send(a=1, b=1))
            _marker("sent, not committed")
            assert task_count() == 0  # invisible to other sessions until commit
        _marker("after commit")
        received = _received(listener, 3)
        assert received[0::2] == ["sent, not committed", "after commit"]
        assert received[1].split() == ["default", received[1].split()[1]]  # queue, ms until due
        assert int(received[1].split()[1]) <= 0
    assert row(task_id, "status") == ("PENDING",)


def test_rolled_back_send_leaves_no_row_and_no_notification() -> None:
    with _listener() as listener:
        with transaction.atomic():
            ok_id(add.send(a=1, b=1))
            ok_id(add.schedule(5, a=1, b=1))
            _marker("inside")
            transaction.set_rollback(True)
        _marker("after rollback")
        # Notifications arrive in commit order: anything from the send would sit in between.
        assert _received(listener, 2) == ["inside", "after rollback"]
    assert task_count() == 0


def test_validation_failure_inside_atomic_keeps_the_transaction_usable() -> None:
    with transaction.atomic():
        err(add.send(a=1), TaskSendErrorCode.VALIDATION_FAILED)  # type: ignore[call-arg]
        ok_id(add.send(a=1, b=2))
    assert task_count() == 1


# --------------------------------------------------------------------------- async


def test_send_async_does_not_block_the_event_loop() -> None:
    """The INSERT waits on a table lock while the event loop keeps running other coroutines."""

    async def scenario() -> tuple[SendResult, int]:
        locker = await psycopg.AsyncConnection.connect(database_url())
        await locker.execute("SET idle_in_transaction_session_timeout = '20s'")  # bound a hang
        await locker.execute("LOCK TABLE horsies_task IN EXCLUSIVE MODE")
        watcher = await psycopg.AsyncConnection.connect(database_url(), autocommit=True)
        sending = asyncio.create_task(add.send_async(a=4, b=5))
        polls = 0
        try:
            while True:
                cur = await watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%%INSERT INTO horsies_task%%' AND pid <> pg_backend_pid()"
                )
                found = await cur.fetchone()
                assert not sending.done(), "send_async finished while the table was locked"
                polls += 1
                if found and found[0]:
                    break
                await asyncio.sleep(0.02)
            await locker.rollback()  # release the lock: the send can now insert
            result = await asyncio.wait_for(sending, timeout=30)
        finally:
            await locker.close()
            await watcher.close()
            await sync_to_async(connections.close_all, thread_sensitive=True)()
        return result, polls

    result, polls = asyncio.run(scenario())
    assert polls >= 1
    assert row(ok_id(result), "kwargs") == ({"a": 4, "b": 5},)


def test_send_async_validation_and_retry_async() -> None:
    async def scenario() -> tuple[SendResult, SendResult]:
        bad = await add.send_async(a=1)  # type: ignore[call-arg]
        replayed = await add.retry_send_async(bad.error if isinstance(bad, Err) else None)
        return bad, replayed

    bad, replayed = asyncio.run(scenario())
    err(bad, TaskSendErrorCode.VALIDATION_FAILED)
    assert "only ENQUEUE_FAILED" in err(replayed, TaskSendErrorCode.VALIDATION_FAILED).message
    assert task_count() == 0


# --------------------------------------------------------------------------- replays


def _enqueue_failed(send: Any) -> TaskSendError:
    """Make a send fail for real: its connection is terminated by the server first."""
    kill_django_connection()
    error = err(send(), TaskSendErrorCode.ENQUEUE_FAILED)
    assert error.retryable
    assert error.payload is not None
    assert error.task_id is not None
    assert "retry with retry_send(err)" in error.message
    return error


def test_dropped_connection_gives_retryable_error_then_retry_send_replays_it() -> None:
    error = _enqueue_failed(lambda: add.send(a=6, b=7))
    assert error.payload is not None
    assert task_count() == 0
    replayed = ok_id(add.retry_send(error))
    assert replayed == error.task_id
    assert row(replayed, "kwargs, enqueue_sha") == ({"a": 6, "b": 7}, error.payload.enqueue_sha)
    # Replaying the same payload again is idempotent: same id, still one row.
    assert ok_id(add.retry_send(error)) == replayed
    assert task_count() == 1


def test_retry_send_async_replays_the_payload() -> None:
    error = _enqueue_failed(lambda: echo.send(value={"deep": [1, "two"]}))

    async def replay() -> SendResult:
        result = await echo.retry_send_async(error)
        await sync_to_async(connections.close_all, thread_sensitive=True)()
        return result

    task_id = ok_id(asyncio.run(replay()))
    assert task_id == error.task_id
    assert row(task_id, "kwargs") == ({"value": {"deep": [1, "two"]}},)


def test_retry_schedule_keeps_the_delay_and_options() -> None:
    deadline = datetime.now(UTC) + timedelta(hours=1)
    bound = add.with_options(TaskSendOptions(good_until=deadline, priority=7))
    error = _enqueue_failed(lambda: bound.schedule(45, a=1, b=2))
    task_id = ok_id(add.retry_schedule(error))
    assert task_id == error.task_id
    delay, good_until, priority = row(
        task_id, "extract(epoch FROM enqueued_at - sent_at), good_until, priority"
    )
    assert (float(delay), good_until, priority) == (45.0, deadline, 7)


def test_retry_schedule_refuses_an_error_from_send() -> None:
    error = _enqueue_failed(lambda: add.send(a=1, b=2))
    message = err(add.retry_schedule(error), TaskSendErrorCode.VALIDATION_FAILED).message
    assert "retry_schedule needs an error from schedule()" in message
    assert task_count() == 0


def test_altered_payload_is_a_mismatch() -> None:
    error = _enqueue_failed(lambda: add.send(a=1, b=2))
    assert error.payload is not None
    for change in (
        {"kwargs_json": '{"a":1,"b":3}'},
        {"priority": 1},
        {"delay_seconds": 10.0},
        {"good_until": datetime(2030, 1, 1, tzinfo=UTC)},
        {"queue_name": "elsewhere"},
    ):
        altered = dataclasses.replace(error, payload=dataclasses.replace(error.payload, **change))
        mismatch = err(add.retry_send(altered), TaskSendErrorCode.PAYLOAD_MISMATCH)
        assert not mismatch.retryable, change
        assert mismatch.task_id == error.task_id, change
    assert task_count() == 0


def test_conflicting_row_with_the_same_id_is_a_mismatch() -> None:
    """A replay whose id already holds another payload is refused, not overwritten."""
    error = _enqueue_failed(lambda: add.send(a=1, b=2))
    assert error.payload is not None
    assert error.task_id is not None
    sql_value(
        "INSERT INTO horsies_task (id, task_name, queue_name, priority, status, kwargs, sent_at,"
        " enqueued_at, retry_count, max_retries, options, enqueue_sha, claim_gen) VALUES (%s,"
        " 'tests.add', 'default', 50, 'COMPLETED', '{}', now(), now(), 0, 0, '{}', 'other', 0)"
        " RETURNING 1",
        error.task_id,
    )
    err(add.retry_send(error), TaskSendErrorCode.PAYLOAD_MISMATCH)
    assert row(error.task_id, "status, enqueue_sha") == ("COMPLETED", "other")


def test_only_enqueue_failed_and_async_context_errors_can_be_replayed() -> None:
    validation = err(add.send(a=1), TaskSendErrorCode.VALIDATION_FAILED)  # type: ignore[call-arg]
    suppressed = TaskSendError(TaskSendErrorCode.SEND_SUPPRESSED, "x")
    enqueue_error = _enqueue_failed(lambda: add.send(a=1, b=1))
    mismatch = dataclasses.replace(enqueue_error, code=TaskSendErrorCode.PAYLOAD_MISMATCH)
    no_payload = dataclasses.replace(enqueue_error, payload=None)
    for bad in (validation, suppressed, mismatch, "not an error", None):
        for replay in (add.retry_send, add.retry_schedule):
            message = err(replay(bad), TaskSendErrorCode.VALIDATION_FAILED).message
            assert "only ENQUEUE_FAILED and ASYNC_CONTEXT errors can be resent" in message
    assert (
        "no payload" in err(add.retry_send(no_payload), TaskSendErrorCode.VALIDATION_FAILED).message
    )
    other_task = err(noop.retry_send(enqueue_error), TaskSendErrorCode.VALIDATION_FAILED)
    assert "call tests.add.retry_send(err)" in other_task.message
    assert task_count() == 0


def test_resend_on_transient_error_recovers_by_itself() -> None:
    with override_settings(HORSIES={**settings.HORSIES, "RESEND_ON_TRANSIENT_ERR": True}):
        kill_django_connection()
        task_id = ok_id(add.send(a=3, b=3))
    assert row(task_id, "kwargs") == ({"a": 3, "b": 3},)
    assert task_count() == 1


def test_resend_is_off_by_default() -> None:
    _enqueue_failed(lambda: add.send(a=3, b=3))
    assert task_count() == 0


# --------------------------------------------------------------------------- send_many


def test_send_many_returns_one_result_per_item_with_one_insert() -> None:
    items: list[dict[str, Any]] = [
        {"a": 1, "b": 1},
        {"a": 1},
        {"a": float("nan"), "b": 1},
        {"a": 2, "b": 2, "z": 0},
        {"a": 3, "b": 3},
    ]
    with CaptureQueriesContext(connection) as queries:
        results = add.send_many(items)
    inserts = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"].upper()]
    assert len(inserts) == 1
    assert len(queries.captured_queries) == 1
    assert [type(r) for r in results] == [Ok, Err, Err, Err, Ok]
    assert (
        "missing required argument(s) b"
        in err(results[1], TaskSendErrorCode.VALIDATION_FAILED).message
    )
    nan = err(results[2], TaskSendErrorCode.VALIDATION_FAILED).message
    assert "argument a must be int, not nan" in nan
    assert "unknown argument(s) z" in err(results[3], TaskSendErrorCode.VALIDATION_FAILED).message
    good = [ok_id(results[0]), ok_id(results[4])]
    assert all(uuid.UUID(i).version == 7 for i in good)
    stored = sql_rows("SELECT id::text, kwargs, status FROM horsies_task ORDER BY id")
    assert stored == [
        (good[0], {"a": 1, "b": 1}, "PENDING"),
        (good[1], {"a": 3, "b": 3}, "PENDING"),
    ]


def test_send_many_gives_each_item_what_send_gives_it() -> None:
    """Flat items are encoded and signed without prepare(); the others, good or bad, anywhere in
    the list, go through it: each result and row is what a single send makes of that item."""
    items: list[dict[str, Any]] = [
        {"value": 1},
        {"value": [1, {"b": 2, "a": 1.50}]},
        {"value": float("nan")},
        {"value": 'é\n"x"\u2028'},
        {"value": "\x00"},
        {"value": None},
        {},
        {"value": True, "extra": 1},
        {"value": 10**5000},
        {"value": {"z": None, "a": "x" * 2_000}},
    ]
    many = echo.send_many(items)
    singly = [echo.send(**item) for item in items]
    assert [type(r) for r in many] == [type(r) for r in singly]
    for got, expected in zip(many, singly, strict=True):
        if isinstance(got, Err):
            assert isinstance(expected, Err)
            assert (got.error.code, got.error.message) == (
                expected.error.code,
                expected.error.message,
            )
        else:
            (kwargs_many,) = row(ok_id(got), "kwargs")
            assert (kwargs_many,) == row(ok_id(expected), "kwargs")
    reordered = add.send_many([{"b": 2, "a": 1}, {"a": 3, "b": 4}])
    assert all(isinstance(r, Ok) for r in reordered)
    # Every row's sha is the one its stored fields give by the specification's own rule.
    mismatched = sql_rows(
        "SELECT id FROM horsies_task WHERE enqueue_sha <> "
        "horsies_enqueue_sha(id, task_name, queue_name, priority, kwargs, NULL, good_until)"
    )
    assert mismatched == []
    assert task_count() == 2 * sum(isinstance(r, Ok) for r in many) + 2


def test_send_many_applies_options_and_notifies_once() -> None:
    deadline = datetime.now(UTC) + timedelta(minutes=1)
    with _listener() as listener:
        results = noop.send_many(
            [{"i": i} for i in range(50)], TaskSendOptions(good_until=deadline, priority=9)
        )
        _marker("after")
        received = _received(listener, 2)
        assert [received[0].split()[0], received[1]] == ["default", "after"]
    assert all(isinstance(r, Ok) for r in results)
    assert sql_rows("SELECT DISTINCT good_until, priority FROM horsies_task") == [(deadline, 9)]
    assert task_count() == 50


# A foreign producer's INSERT ... SELECT: one row per (queue, status, seconds until due).
FOREIGN_INSERT = """
INSERT INTO horsies_task (id, task_name, queue_name, priority, status, kwargs, sent_at,
    enqueued_at, retry_count, max_retries, options, enqueue_sha, claim_gen)
SELECT gen_random_uuid(), 'tests.add', q, 50, s, '{}', now(),
    statement_timestamp() + make_interval(secs => d), 0, 0, '{}', '', 0
FROM unnest(%s::text[], %s::text[], %s::float8[]) AS t(q, s, d)
"""


def test_a_statement_of_many_rows_notifies_once_per_queue_and_due_time() -> None:
    """Rows due now send one notification per queue (PostgreSQL drops repeated payloads);
    a delayed row says when it is due; a row that is not PENDING says nothing."""
    rows = [
        ("alpha", "PENDING", 0.0),
        ("alpha", "PENDING", 0.0),
        ("beta", "PENDING", 0.0),
        ("alpha", "PENDING", 0.0),
        ("beta", "PENDING", 0.0),
        ("gamma", "PENDING", 5.0),
        ("delta", "CANCELLED", 0.0),
    ]
    with _listener() as listener:
        sql_value(FOREIGN_INSERT + " RETURNING 1", *map(list, zip(*rows, strict=True)))
        _marker("after")
        received = _received(listener, 4)
    assert received[-1] == "after"
    assert sorted(received[:-1]) == ["alpha 0", "beta 0", "gamma 5000"]


def test_each_send_of_a_transaction_is_announced_once_at_commit() -> None:
    with _listener() as listener:
        with transaction.atomic():
            ok_id(add.send(a=1, b=1))
            ok_id(add.send(a=2, b=2))
            ok_id(add.schedule(60, a=3, b=3))
        _marker("after")
        received = _received(listener, 3)
    assert received[0] == "default 0"
    assert received[1].split()[0] == "default"
    assert 59_000 <= int(received[1].split()[1]) <= 60_000
    assert received[2] == "after"


def test_send_many_with_nothing_valid_writes_nothing() -> None:
    with CaptureQueriesContext(connection) as queries:
        results = add.send_many([{"a": 1}, {}])
    assert len(queries.captured_queries) == 0
    assert all(isinstance(r, Err) for r in results)
    assert add.send_many([]) == []
    assert task_count() == 0


def test_send_many_in_a_rolled_back_transaction_leaves_nothing() -> None:
    with transaction.atomic():
        assert all(isinstance(r, Ok) for r in noop.send_many([{"i": 1}, {"i": 2}]))
        transaction.set_rollback(True)
    assert task_count() == 0


def _prepared_inserts() -> list[str]:
    """Prepared INSERTs into horsies_task on this test's Django connection."""
    with connection.cursor() as cur:
        cur.execute("SELECT statement FROM pg_prepared_statements")
        return [r[0] for r in cur.fetchall() if "INSERT INTO horsies_task" in r[0]]


def test_single_send_runs_a_prepared_insert_unless_disabled() -> None:
    connection.close()  # a fresh session: nothing prepared yet
    assert noop.send(i=1).is_ok()
    assert len(_prepared_inserts()) == 1
    assert all(noop.send(i=i).is_ok() for i in range(5))
    assert len(_prepared_inserts()) == 1  # prepared once per connection, then reused
    with transaction.atomic():  # inside the caller's transaction, in a savepoint
        handle = noop.send(i=7).ok_value
        assert noop.send(i=7).is_ok()
        transaction.set_rollback(True)
    assert sql_value("SELECT count(*) FROM horsies_task WHERE id = %s", handle.task_id) == 0

    connection.close()
    with override_settings(HORSIES={**settings.HORSIES, "PREPARED_STATEMENTS": False}):
        assert all(noop.send(i=i).is_ok() for i in range(3))
        assert _prepared_inserts() == []
    assert task_count() == 9


def test_replays_inside_a_transaction_are_told_apart_by_the_primary_key() -> None:
    """A replay's INSERT fails on the primary key in a savepoint: an identical payload is Ok,
    another payload under that id is PAYLOAD_MISMATCH, and the caller's transaction goes on."""
    error = _enqueue_failed(lambda: add.send(a=1, b=2))
    with transaction.atomic():
        replayed = ok_id(add.retry_send(error))
        assert ok_id(add.retry_send(error)) == replayed  # the same payload again: idempotent
        assert noop.send(i=1).is_ok()
    assert task_count() == 2
    other = _enqueue_failed(lambda: add.send(a=3, b=4))
    assert other.task_id is not None
    sql_value(
        "INSERT INTO horsies_task (id, task_name, queue_name, priority, status, kwargs, sent_at,"
        " enqueued_at, retry_count, max_retries, options, enqueue_sha, claim_gen) VALUES (%s,"
        " 'tests.add', 'default', 50, 'COMPLETED', '{}', now(), now(), 0, 0, '{}', 'other', 0)"
        " RETURNING 1",
        other.task_id,
    )
    with transaction.atomic():
        err(add.retry_send(other), TaskSendErrorCode.PAYLOAD_MISMATCH)
        assert noop.send(i=2).is_ok()  # the savepoint kept the transaction usable
    assert task_count() == 4
