"""`TaskHandle`: the producer's view of one sent task (get, info, cancel).

A handle caches the final result once read: a second `get()` makes no query. Nothing here
raises when the database is away: `get()` returns `BROKER_ERROR` (never cached), the others `Err`.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from asgiref.sync import sync_to_async

from horsies_django import results
from horsies_django.cancelling import cancel
from horsies_django.conf import horsies_settings
from horsies_django.db import producer_queries
from horsies_django.db.producer_queries import AttemptRow, InfoRow
from horsies_django.types import (
    BrokerError,
    BrokerErrorCode,
    BrokerResult,
    Err,
    Ok,
    OperationalErrorCode,
    RetrievalCode,
    TaskAttempt,
    TaskError,
    TaskInfo,
    TaskResult,
    TaskStatus,
    error_result,
)

# Longer waits are mistakes (and past float range they could not be measured).
MAX_WAIT_MS: Final = 100 * 365 * 24 * 3600 * 1000


class TaskHandle[T]:
    """A reference to a sent task, by id."""

    __slots__ = ("_cached", "_task_name", "task_id")

    def __init__(self, task_id: str, task_name: str | None = None) -> None:
        self.task_id = str(task_id)
        self._task_name = task_name
        self._cached: TaskResult[T, TaskError] | None = None

    def __repr__(self) -> str:
        return f"TaskHandle({self.task_id!r}, task_name={self._task_name!r})"

    def _well_formed(self) -> bool:
        try:
            uuid.UUID(self.task_id)
        except ValueError:
            return False
        return True

    def _not_found(self) -> TaskResult[T, TaskError]:
        return error_result(
            RetrievalCode.TASK_NOT_FOUND, f"no task with id {self.task_id!r} (not a task UUID)"
        )

    def _refuse_timeout(self, timeout_ms: object) -> TaskResult[T, TaskError] | None:
        """INVALID_TIMEOUT unless `timeout_ms` is None or a number of milliseconds >= 0."""
        if timeout_ms is None or (
            isinstance(timeout_ms, int | float)
            and not isinstance(timeout_ms, bool)
            and 0 <= timeout_ms <= MAX_WAIT_MS  # False for NaN
        ):
            return None
        return error_result(
            RetrievalCode.INVALID_TIMEOUT,
            f"timeout_ms={timeout_ms!r:.100} is not a wait: pass None to wait until task "
            f"{self.task_id} finishes, or milliseconds from 0 (look once, do not wait) to "
            f"{MAX_WAIT_MS:,} (100 years)",
        )

    @classmethod
    def from_id(cls, task_id: str) -> TaskHandle[Any]:
        """Rebuild a handle for a task id stored elsewhere."""
        return cls(str(task_id))

    @property
    def _alias(self) -> str:
        return horsies_settings().DATABASE_ALIAS

    def get(self, timeout_ms: int | None = None) -> TaskResult[T, TaskError]:
        """Wait for the result; `WAIT_TIMEOUT` after `timeout_ms` (the task keeps running)."""
        refused = self._refuse_timeout(timeout_ms)
        if refused is not None:
            return refused
        if self._cached is not None:
            return self._cached
        if not self._well_formed():
            return self._not_found()
        result: TaskResult[T, TaskError] = results.wait_sync(self._alias, self.task_id, timeout_ms)
        return self._keep(result)

    async def get_async(self, timeout_ms: int | None = None) -> TaskResult[T, TaskError]:
        """Async `get()`: waits without blocking the event loop."""
        refused = self._refuse_timeout(timeout_ms)
        if refused is not None:
            return refused
        if self._cached is not None:
            return self._cached
        if not self._well_formed():
            return self._not_found()
        result: TaskResult[T, TaskError] = await results.wait_async(
            self._alias, self.task_id, timeout_ms
        )
        return self._keep(result)

    def _keep(self, result: TaskResult[T, TaskError]) -> TaskResult[T, TaskError]:
        """Cache a final result; a wait timeout, a missing task or a broker error can change."""
        transient = result.is_err() and result.err_value.error_code in (
            RetrievalCode.WAIT_TIMEOUT,
            RetrievalCode.TASK_NOT_FOUND,
            OperationalErrorCode.BROKER_ERROR,
        )
        if not transient:
            self._cached = result
        return result

    def info(
        self,
        include_result: bool = False,
        include_failed_reason: bool = False,
        include_attempts: bool = False,
    ) -> BrokerResult[TaskInfo | None]:
        """The task's metadata (None if there is no such task); `Err` if it cannot be read."""
        if not self._well_formed():
            return Ok(None)
        read = results.read_or_error(
            self._alias,
            lambda: self._read_info(include_result, include_failed_reason, include_attempts),
        )
        if isinstance(read, Err):
            return Err(self._broker_error(read.error))
        return Ok(read.value)

    def _read_info(
        self, include_result: bool, include_failed_reason: bool, include_attempts: bool
    ) -> TaskInfo | None:
        row = producer_queries.fetch_info(
            self._alias,
            self.task_id,
            include_result=include_result,
            include_failed_reason=include_failed_reason,
        )
        if row is None:
            return None
        attempts = (
            [self._attempt(a) for a in producer_queries.fetch_attempts(self._alias, self.task_id)]
            if include_attempts
            else None
        )
        return self._info(row, include_result, attempts)

    def _broker_error(self, exc: Exception) -> BrokerError:
        return BrokerError(
            BrokerErrorCode.BROKER_ERROR,
            f"could not read task {self.task_id}: {type(exc).__name__}: {exc}",
            exc,
        )

    async def info_async(
        self,
        include_result: bool = False,
        include_failed_reason: bool = False,
        include_attempts: bool = False,
    ) -> BrokerResult[TaskInfo | None]:
        return await sync_to_async(self.info, thread_sensitive=True)(
            include_result, include_failed_reason, include_attempts
        )

    def cancel(self) -> BrokerResult[None]:
        """Cancel a PENDING or CLAIMED task; a RUNNING or finished task is refused."""
        if not self._well_formed():
            return Err(BrokerError(BrokerErrorCode.TASK_NOT_FOUND, f"no task {self.task_id!r}"))
        done = results.read_or_error(self._alias, lambda: cancel(self.task_id))
        if isinstance(done, Err):
            return Err(self._broker_error(done.error))
        if isinstance(done.value, Err) and done.value.error.code == BrokerErrorCode.BROKER_ERROR:
            results.discard_broken_connection(self._alias)  # the next call reconnects
        return done.value

    async def cancel_async(self) -> BrokerResult[None]:
        return await sync_to_async(self.cancel, thread_sensitive=True)()

    def _attempt(self, row: AttemptRow) -> TaskAttempt:
        return TaskAttempt(
            task_id=self.task_id,
            attempt=row.attempt,
            outcome=row.outcome,
            will_retry=row.will_retry,
            error_code=row.error_code,
            error_message=row.error_message,
            started_at=row.started_at,
            finished_at=row.finished_at,
            worker_id=row.worker_id,
            worker_pid=row.pid,
        )

    def _info(
        self, row: InfoRow, include_result: bool, attempts: list[TaskAttempt] | None
    ) -> TaskInfo:
        self._task_name = row.task_name
        result = results.result_from_row(self.task_id, row.outcome) if include_result else None
        return TaskInfo(
            task_id=row.task_id,
            task_name=row.task_name,
            status=TaskStatus(row.status),
            queue_name=row.queue_name,
            priority=row.priority,
            retry_count=row.retry_count,
            max_retries=row.max_retries,
            sent_at=row.sent_at,
            enqueued_at=row.enqueued_at,
            next_retry_at=row.next_retry_at,
            good_until=row.good_until,
            claimed_at=row.claimed_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            worker_id=row.claimed_by,
            error_code=row.error_code if row.status == TaskStatus.FAILED else None,
            result=result,
            failed_reason=row.failed_reason,
            attempts=attempts,
        )
