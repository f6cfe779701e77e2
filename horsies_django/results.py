"""Waiting for results and turning finished rows into `TaskResult`s.

One background listener per process serves every waiter (no connection per call). A waiter
registers before it reads the row, so a result finished between the read and the wait still
wakes it; a poll every POLL_INTERVAL_MS covers notifications lost with a dropped connection.
When a notification names tasks that are waited for, the listener reads their rows at once, in
one query on its own connection, and hands them to the waiters it wakes: a waiter then needs no
query of its own (it reads itself only when none was handed over). Reads never raise: a
database that cannot be read gives `BROKER_ERROR`, which is not final.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Final

import psycopg
from django.db import Error as DjangoDatabaseError
from django.db import connections
from pydantic import TypeAdapter, ValidationError

from horsies_django import codec
from horsies_django.conf import horsies_settings
from horsies_django.db import producer_queries
from horsies_django.db.connections import Row
from horsies_django.db.notify import (
    TASK_DONE_CHANNEL,
    WORKFLOW_DONE_CHANNEL,
    BackgroundListener,
    Notes,
)
from horsies_django.db.producer_queries import OutcomeRow
from horsies_django.registered import table
from horsies_django.types import (
    Err,
    Ok,
    OperationalErrorCode,
    OutcomeCode,
    Result,
    RetrievalCode,
    TaskError,
    TaskResult,
    TaskStatus,
    error_result,
)

type Wake = Callable[[], None]

# What a read can raise when the database is away, refuses the query or dropped the connection
# (Django's InterfaceError is not a DatabaseError; psycopg's own errors can escape its wrapper).
READ_ERRORS: Final = (DjangoDatabaseError, psycopg.Error)


class _Waiters:
    """task id -> callbacks to run when its `task_done` notification arrives, and the row the
    listener read for it then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_task: defaultdict[str, list[Wake]] = defaultdict(list)
        self._rows: dict[str, OutcomeRow] = {}
        self._listener: BackgroundListener | None = None

    def add(self, task_id: str, wake: Wake) -> None:
        with self._lock:
            self._by_task[task_id].append(wake)
            self._ensure_listener()

    def remove(self, task_id: str, wake: Wake) -> None:
        with self._lock:
            wakes = self._by_task.get(task_id)
            if wakes and wake in wakes:
                wakes.remove(wake)
                if not wakes:
                    del self._by_task[task_id]
                    self._rows.pop(task_id, None)

    def delivered(self, task_id: str) -> OutcomeRow | None:
        """The row the listener read when `task_id` was notified finished, if it did."""
        with self._lock:
            return self._rows.get(task_id)

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None and listener.pid == os.getpid():
            listener.stop(wait_s=5.0)

    def _ensure_listener(self) -> None:
        listener, alias = self._listener, horsies_settings().listen_alias
        if listener is not None and listener.pid == os.getpid() and listener.alias != alias:
            listener.stop()  # the alias changed (override_settings): listen where we read
            listener = None
        if listener is None or listener.pid != os.getpid():
            self._listener = BackgroundListener(
                alias,
                [TASK_DONE_CHANNEL, WORKFLOW_DONE_CHANNEL],
                on_notify=self._notified,
                on_reconnect=self._wake_all,
            )

    def _notified(self, conn: psycopg.Connection[Row], notes: Notes) -> None:
        """Each notification names what one statement finished (task ids, comma-separated, or
        a workflow id): read the rows of the waited-for tasks, then wake their waiters."""
        ids = [i for _, payload in notes for i in payload.split(",")]
        with self._lock:
            done = {
                i
                for channel, payload in notes
                if channel == TASK_DONE_CHANNEL
                for i in payload.split(",")
                if i in self._by_task
            }
        rows: dict[str, OutcomeRow] = {}
        if done:
            with contextlib.suppress(psycopg.Error):  # the waiters read for themselves
                rows = producer_queries.fetch_outcomes(conn, sorted(done))
        with self._lock:
            self._rows.update((i, row) for i, row in rows.items() if i in self._by_task)
            wakes = [w for i in ids for w in self._by_task.get(i, ())]
        for wake in wakes:
            wake()

    def _wake_all(self) -> None:
        with self._lock:
            wakes = [w for ws in self._by_task.values() for w in ws]
        for wake in wakes:
            wake()


WAITERS = _Waiters()


def stop_listener() -> None:
    """Stop this process's result listener and close its connection (it restarts on demand)."""
    WAITERS.stop()


def poll_interval_s() -> float:
    return horsies_settings().POLL_INTERVAL_MS / 1000


# --------------------------------------------------------------------------- reading safely


def read_or_error[R](alias: str, read: Callable[[], R]) -> Result[R, Exception]:
    """Run a database read and return its value, or the error it raised.

    A connection the server dropped (restart, `pg_terminate_backend`, idle timeout) is closed
    and the read tried once more on a fresh one; a database that cannot be reached is an `Err`.
    """
    failure: Exception | None = None
    for _ in range(2):
        had_connection = connections[alias].connection is not None
        try:
            return Ok(read())
        except READ_ERRORS as exc:
            failure = exc
            if not (discard_broken_connection(alias) and had_connection):
                break
    assert failure is not None
    return Err(failure)


def discard_broken_connection(alias: str) -> bool:
    """Close this thread's connection if it is unusable, so the next read reconnects.

    Inside a transaction nothing is closed (the caller's transaction is lost either way, and
    is the caller's to end); returns whether the connection was closed.
    """
    wrapper = connections[alias]
    if wrapper.in_atomic_block or wrapper.connection is None:
        return False
    wrapper.close_if_unusable_or_obsolete()
    return wrapper.connection is None


def broker_error_result(task_id: str, exc: Exception) -> TaskResult[Any, TaskError]:
    """The result of a read the database could not answer (not final: ask again later)."""
    return error_result(
        OperationalErrorCode.BROKER_ERROR,
        f"could not read task {task_id}: the database is unreachable or refused the query "
        f"({type(exc).__name__}: {exc}); the task is unaffected, call get() again later",
    )


# --------------------------------------------------------------------------- rows -> results


def return_adapter(task_name: str | None) -> TypeAdapter[Any] | None:
    """The validator of a task's declared result type, if the task is registered here."""
    definition = table.get(task_name) if task_name else None
    return definition.return_adapter if definition else None


def result_from_row(task_id: str, row: OutcomeRow | None) -> TaskResult[Any, TaskError] | None:
    """The final result of a finished task, an error for a missing one, None if unfinished.

    The ok value is rebuilt as the declared type when the task is registered in this process.
    """
    if row is None:
        return error_result(RetrievalCode.TASK_NOT_FOUND, f"no task with id {task_id}")
    status, task_name, result_json = row.status, row.task_name, row.result_json
    error_code, failed_reason = row.error_code, row.failed_reason
    if status == TaskStatus.CANCELLED:
        return error_result(OutcomeCode.TASK_CANCELLED, failed_reason or "task was cancelled")
    if status == TaskStatus.EXPIRED:
        return error_result(OutcomeCode.TASK_EXPIRED, failed_reason or "task expired")
    if status not in (TaskStatus.COMPLETED, TaskStatus.FAILED):
        return None
    if result_json is None:
        code = error_code or OperationalErrorCode.RESULT_DESERIALIZATION_ERROR
        return TaskResult(err=TaskError.from_stored({"error_code": code, "message": failed_reason}))
    try:
        return codec.decode_result(result_json, return_adapter(task_name))
    except (ValueError, ValidationError, ImportError, AttributeError, TypeError) as exc:
        return error_result(
            OperationalErrorCode.RESULT_DESERIALIZATION_ERROR,
            f"stored result of {task_name} {task_id} does not decode to the declared type: {exc}",
        )


def _read(alias: str, task_id: str) -> Result[OutcomeRow | None, Exception]:
    return read_or_error(alias, lambda: producer_queries.fetch_outcome(alias, task_id))


def _timeout_result(task_id: str, timeout_ms: int | None) -> TaskResult[Any, TaskError]:
    return error_result(
        RetrievalCode.WAIT_TIMEOUT,
        f"task {task_id} did not finish within {timeout_ms} ms; it may still be running",
    )


def _answer(
    task_id: str, read: Result[OutcomeRow | None, Exception]
) -> TaskResult[Any, TaskError] | None:
    """What one read of the row says: a result, a broker error, or None (keep waiting)."""
    if isinstance(read, Err):
        return broker_error_result(task_id, read.error)
    return result_from_row(task_id, read.value)


def _delivered(task_id: str) -> TaskResult[Any, TaskError] | None:
    """The final result from the row the listener handed over, if it read one."""
    row = WAITERS.delivered(task_id)
    return None if row is None else result_from_row(task_id, row)


def wait_sync(alias: str, task_id: str, timeout_ms: int | None) -> TaskResult[Any, TaskError]:
    """Block until the task finishes (or `timeout_ms` passes, or the database fails)."""
    import time

    deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
    event = threading.Event()
    WAITERS.add(task_id, event.set)
    try:
        while True:
            event.clear()
            result = _delivered(task_id)
            if result is None:
                result = _answer(task_id, _read(alias, task_id))
            if result is not None:
                return result
            remaining = poll_interval_s()
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return _timeout_result(task_id, timeout_ms)
                remaining = min(remaining, left)
            event.wait(remaining)
    finally:
        WAITERS.remove(task_id, event.set)


async def wait_async(
    alias: str, task_id: str, timeout_ms: int | None
) -> TaskResult[Any, TaskError]:
    """Like `wait_sync`, without blocking the event loop."""
    from asgiref.sync import sync_to_async

    loop = asyncio.get_running_loop()
    event = asyncio.Event()

    def wake() -> None:
        loop.call_soon_threadsafe(event.set)

    read = sync_to_async(_read, thread_sensitive=True)
    deadline = None if timeout_ms is None else loop.time() + timeout_ms / 1000
    WAITERS.add(task_id, wake)
    try:
        while True:
            event.clear()
            result = _delivered(task_id)
            if result is None:
                result = _answer(task_id, await read(alias, task_id))
            if result is not None:
                return result
            remaining = poll_interval_s()
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    return _timeout_result(task_id, timeout_ms)
                remaining = min(remaining, left)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
    finally:
        WAITERS.remove(task_id, wake)
