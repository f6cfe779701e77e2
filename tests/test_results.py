"""Waiting for results: get/get_async, WAIT_TIMEOUT, caching on the handle, TASK_NOT_FOUND,
and one shared LISTEN connection per process however many callers wait.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from horsies_django import RetrievalCode, TaskError, TaskHandle, TaskResult, codec
from tests.conftest import WorkerProcess, database_url, sql_rows, sql_value, wait_until
from tests.testapp.tasks import add, gate, sleep_for
from tests.worker_helpers import listen_backends, tcp_ports

pytestmark = pytest.mark.usefixtures("clean_tables")

LONG_MS = 60_000


def test_get_and_get_async_return_the_task_result(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()
    first = add.send(a=2, b=2).ok_value
    second = add.send(a=3, b=4).ok_value
    assert first.get(timeout_ms=LONG_MS).ok_value == 4
    assert async_to_sync(second.get_async)(timeout_ms=LONG_MS).ok_value == 7


def test_get_without_timeout_waits_for_the_result(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()
    assert sleep_for.send(seconds=0.5).ok_value.get().ok_value == "slept"


def test_wait_timeout_leaves_the_task_running_and_a_later_get_succeeds(
    start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    start_worker()
    release = tmp_path / "release"
    handle = gate.send(release=str(release)).ok_value  # runs until the test releases it
    wait_until(lambda: task_status(handle.task_id) == "RUNNING", what="task RUNNING")

    began = time.monotonic()
    timed_out = handle.get(timeout_ms=200)
    waited = time.monotonic() - began
    assert timed_out.err_value.error_code == RetrievalCode.WAIT_TIMEOUT
    assert waited >= 0.2  # never early; the upper bound is only "it returns at all"
    async_timed_out = async_to_sync(handle.get_async)(timeout_ms=200)
    assert async_timed_out.err_value.error_code == RetrievalCode.WAIT_TIMEOUT
    assert task_status(handle.task_id) == "RUNNING"
    assert sql_value("SELECT count(*) FROM horsies_task_attempt") == 0

    release.touch()
    assert handle.get(timeout_ms=LONG_MS).ok_value == "released"
    assert task_status(handle.task_id) == "COMPLETED"


def task_status(task_id: str) -> str:
    return str(sql_value("SELECT status FROM horsies_task WHERE id = %s", task_id))


def test_a_result_is_cached_on_the_handle(start_worker: Callable[..., WorkerProcess]) -> None:
    """The first get() reads the row; later get()/get_async() calls make no query at all."""
    start_worker()
    handle = add.send(a=5, b=5).ok_value
    with CaptureQueriesContext(connection) as first_read:
        first = handle.get(timeout_ms=LONG_MS)
    assert first.ok_value == 10
    assert any("FROM horsies_task" in q["sql"] for q in first_read.captured_queries)

    with CaptureQueriesContext(connection) as later_reads:
        again = handle.get(timeout_ms=LONG_MS)
        again_async = async_to_sync(handle.get_async)(timeout_ms=LONG_MS)
    assert later_reads.captured_queries == []
    assert again is first
    assert again_async is first


def test_a_wait_timeout_is_not_cached(
    start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    worker = start_worker("--processes", "1")
    release = tmp_path / "release"
    blocker = gate.send(release=str(release)).ok_value
    handle = add.send(a=1, b=2).ok_value  # queued behind the blocker on the only child
    assert handle.get(timeout_ms=100).err_value.error_code == RetrievalCode.WAIT_TIMEOUT
    release.touch()
    with CaptureQueriesContext(connection) as second:
        assert handle.get(timeout_ms=LONG_MS).ok_value == 3
    assert len(second.captured_queries) >= 1
    assert blocker.get(timeout_ms=LONG_MS).is_ok()
    assert worker.proc.poll() is None


def test_unknown_task_id_is_task_not_found_without_waiting() -> None:
    handle = TaskHandle.from_id(str(uuid.uuid4()))
    began = time.monotonic()
    missing = handle.get(timeout_ms=LONG_MS)
    assert missing.err_value.error_code == RetrievalCode.TASK_NOT_FOUND
    assert handle.task_id in (missing.err_value.message or "")
    missing_async = async_to_sync(handle.get_async)(timeout_ms=LONG_MS)
    assert missing_async.err_value.error_code == RetrievalCode.TASK_NOT_FOUND
    assert time.monotonic() - began < 10
    assert handle.info().ok_value is None


def test_malformed_task_id_is_task_not_found_not_an_exception() -> None:
    result = TaskHandle.from_id("not-a-uuid").get(timeout_ms=1_000)
    assert result.err_value.error_code == RetrievalCode.TASK_NOT_FOUND


# --------------------------------------------------------------------------- one listener


def my_horsies_backends() -> int:
    """Backends opened by this process through store.connect (application_name horsies_worker)."""
    ports = tcp_ports(os.getpid())
    rows = sql_rows(
        "SELECT client_port FROM pg_stat_activity WHERE application_name = 'horsies_worker'"
    )
    return sum(1 for (port,) in rows if port in ports)


def test_concurrent_waiters_share_one_listen_connection(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """Six threads in get() and two coroutines in get_async(): one LISTEN backend serves all."""
    start_worker("--processes", "2")
    handles = [sleep_for.send(seconds=1.0).ok_value for _ in range(8)]
    results: dict[int, TaskResult[Any, TaskError]] = {}

    def wait_sync(index: int) -> None:
        try:
            results[index] = handles[index].get(timeout_ms=LONG_MS)
        finally:
            connection.close()  # this thread's own Django connection

    async def gather_async() -> list[TaskResult[Any, TaskError]]:
        return list(await asyncio.gather(*(h.get_async(timeout_ms=LONG_MS) for h in handles[6:])))

    def wait_async() -> None:
        try:
            for offset, result in enumerate(async_to_sync(gather_async)()):
                results[6 + offset] = result
        finally:
            connection.close()

    threads = [threading.Thread(target=wait_sync, args=(i,)) for i in range(6)]
    threads.append(threading.Thread(target=wait_async))
    for thread in threads:
        thread.start()
    samples: list[tuple[int, int, int]] = []

    def sample_until_done() -> bool:
        alive = sum(t.is_alive() for t in threads)
        samples.append((alive, len(listen_backends(os.getpid())), my_horsies_backends()))
        return alive == 0

    wait_until(sample_until_done, what="all waiters to finish")
    for thread in threads:
        thread.join()
    assert [results[i].ok_value for i in range(8)] == ["slept"] * 8
    assert any(alive == 7 and listening == 1 for alive, listening, _ in samples), samples
    assert max(listening for _, listening, _ in samples) == 1
    assert max(total for _, _, total in samples) == 1


def test_a_waiter_woken_by_its_notification_runs_no_query_of_its_own() -> None:
    """The listener reads the rows of the tasks a notification names and hands them to their
    waiters: the waiter's only query is its first look, before the task finished (the poll
    interval is far longer than the wait)."""
    earlier, handle = add.send(a=1, b=1).ok_value, add.send(a=3, b=4).ok_value
    got: list[TaskResult[Any, TaskError]] = []
    captures: list[CaptureQueriesContext] = []

    def wait_for(waited: TaskHandle[Any]) -> None:
        try:
            with CaptureQueriesContext(connections["default"]) as capture:  # this thread's
                captures.append(capture)
                got.append(waited.get(timeout_ms=LONG_MS))
        finally:
            connection.close()

    def finish(conn: psycopg.Connection[Any], task_id: str, value: int) -> None:
        conn.execute(
            "UPDATE horsies_task SET status = 'COMPLETED', finished_at = now(),"
            " result = %s::jsonb WHERE id = %s",
            (codec.encode_result(TaskResult(ok=value)), task_id),
        )

    with (
        override_settings(HORSIES={**settings.HORSIES, "POLL_INTERVAL_MS": 600_000}),
        psycopg.connect(database_url(), autocommit=True) as conn,
    ):
        # A first wait starts the listener; once it has answered, the wake-up every waiter
        # gets when the listener (re)connects is behind us.
        for waited, value in ((earlier, 2), (handle, 7)):
            captures.clear()
            thread = threading.Thread(target=wait_for, args=(waited,))
            thread.start()
            wait_until(lambda: captures and captures[0].captured_queries, what="the first look")
            wait_until(lambda: listen_backends(os.getpid()), what="the waiter to LISTEN")
            finish(conn, waited.task_id, value)
            thread.join(timeout=20)
    assert [r.ok_value for r in got] == [2, 7]
    assert len(captures[0].captured_queries) == 1


def test_one_statement_announces_every_task_it_finished_in_one_notification() -> None:
    """The done trigger runs per statement: one notification lists the ids, and a waiter whose
    id is in the list wakes from it (the poll interval is far longer than the wait)."""
    handles = [add.send(a=i, b=i).ok_value for i in range(3)]
    ids = sorted(h.task_id for h in handles)
    waiter = TaskHandle.from_id(ids[1])
    got: list[TaskResult[Any, TaskError]] = []
    with (
        override_settings(HORSIES={**settings.HORSIES, "POLL_INTERVAL_MS": 600_000}),
        psycopg.connect(database_url(), autocommit=True) as conn,
    ):
        conn.execute("LISTEN horsies_task_done")

        def wait_for_it() -> None:
            try:
                got.append(waiter.get(timeout_ms=LONG_MS))
            finally:
                connection.close()  # this thread's own Django connection

        thread = threading.Thread(target=wait_for_it)
        thread.start()
        wait_until(lambda: listen_backends(os.getpid()), what="the waiter to LISTEN")
        conn.execute(
            "UPDATE horsies_task SET status = 'COMPLETED', finished_at = now(),"
            " result = %s::jsonb WHERE id = ANY(%s::uuid[])",
            (codec.encode_result(TaskResult(ok=7)), ids),
        )
        payloads = [n.payload for n in conn.notifies(timeout=10, stop_after=1)]
        thread.join(timeout=20)
    assert [sorted(p.split(",")) for p in payloads] == [ids]
    assert [r.ok_value for r in got] == [7]
