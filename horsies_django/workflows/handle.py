"""WorkflowHandle: read, wait for, cancel, pause and resume a started workflow.

Every method returns a value (`TaskResult` or `BrokerResult`) and never raises for expected
failures; each has an `_async` twin. `get()` wakes on `horsies_workflow_done` (the process's
result listener) and polls as a fallback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async

from horsies_django import codec
from horsies_django.conf import horsies_settings
from horsies_django.db import workflow_queries
from horsies_django.db.workflow_queries import NodeRow, WorkflowRow
from horsies_django.handles import MAX_WAIT_MS
from horsies_django.results import WAITERS, poll_interval_s, read_or_error, return_adapter
from horsies_django.states import WORKFLOW_TERMINAL_STATES, WorkflowStatus
from horsies_django.types import (
    BrokerError,
    BrokerErrorCode,
    BrokerResult,
    Err,
    Ok,
    OperationalErrorCode,
    OutcomeCode,
    RetrievalCode,
    TaskError,
    TaskResult,
    error_result,
)


@dataclass(frozen=True, slots=True)
class WorkflowTaskInfo:
    """One node of a workflow as `tasks()` shows it."""

    node_id: str
    index: int
    name: str | None
    status: str
    result: TaskResult[Any, TaskError] | None
    started_at: datetime | None
    completed_at: datetime | None
    sub_workflow_id: str | None
    task_id: str | None


def _node_result(node: NodeRow) -> TaskResult[Any, TaskError] | None:
    if node.result_json is None:
        return None
    try:
        return codec.decode_result(node.result_json, return_adapter(node.task_name))
    except (ValueError, TypeError, ImportError, AttributeError) as exc:
        return error_result(
            OperationalErrorCode.RESULT_DESERIALIZATION_ERROR,
            f"stored result of node {node.node_id} does not decode: {exc}",
        )


class WorkflowHandle:
    """A started workflow, by id."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = str(workflow_id)
        self._alias = horsies_settings().DATABASE_ALIAS

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.workflow_id!r})"

    @classmethod
    def from_id(cls, workflow_id: str) -> WorkflowHandle:
        return cls(workflow_id)

    # ------------------------------------------------------------------ reading

    def _read[R](self, read: Callable[[], R]) -> BrokerResult[R]:
        outcome = read_or_error(self._alias, read)
        if isinstance(outcome, Err):
            return Err(
                BrokerError(
                    BrokerErrorCode.BROKER_ERROR,
                    f"could not read workflow {self.workflow_id}: {outcome.error}",
                    outcome.error,
                )
            )
        return Ok(outcome.value)

    def _row(self) -> BrokerResult[WorkflowRow | None]:
        return self._read(lambda: workflow_queries.fetch_workflow(self._alias, self.workflow_id))

    def status(self) -> BrokerResult[str | None]:
        """The workflow's status (None if there is no such workflow)."""
        row = self._row()
        if isinstance(row, Err):
            return row
        return Ok(None if row.value is None else row.value.status)

    def tasks(self) -> BrokerResult[list[WorkflowTaskInfo]]:
        nodes = self._read(lambda: workflow_queries.fetch_nodes(self._alias, self.workflow_id))
        if isinstance(nodes, Err):
            return nodes
        return Ok(
            [
                WorkflowTaskInfo(
                    node_id=n.node_id,
                    index=n.index,
                    name=n.task_name,
                    status=n.status,
                    result=_node_result(n),
                    started_at=n.started_at,
                    completed_at=n.completed_at,
                    sub_workflow_id=n.sub_workflow_id,
                    task_id=n.task_id,
                )
                for n in nodes.value
            ]
        )

    def results(self) -> BrokerResult[dict[str, TaskResult[Any, TaskError]]]:
        """The results of the nodes that finished so far, by node id."""
        nodes = self.tasks()
        if isinstance(nodes, Err):
            return nodes
        return Ok({n.node_id: n.result for n in nodes.value if n.result is not None})

    def result_for(self, node: Any) -> TaskResult[Any, TaskError]:
        """One node's result (a node id or a node of the spec), without waiting."""
        node_id = node if isinstance(node, str) else str(getattr(node, "resolved_id", node))
        nodes = self.tasks()
        if isinstance(nodes, Err):
            return error_result(OperationalErrorCode.BROKER_ERROR, str(nodes.error))
        for info in nodes.value:
            if info.node_id == node_id:
                if info.result is None:
                    return error_result(
                        RetrievalCode.RESULT_NOT_READY, f"node {node_id} is {info.status}"
                    )
                return info.result
        return error_result(
            RetrievalCode.WORKFLOW_NOT_FOUND,
            f"workflow {self.workflow_id} has no node {node_id!r}",
        )

    # ------------------------------------------------------------------ waiting

    def _final(self, row: WorkflowRow | None) -> TaskResult[Any, TaskError] | None:
        """The workflow's result if it ended; an error now if paused or missing; else None."""
        if row is None:
            return error_result(
                RetrievalCode.WORKFLOW_NOT_FOUND, f"no workflow with id {self.workflow_id}"
            )
        if row.status == WorkflowStatus.PAUSED:
            return error_result(
                OutcomeCode.WORKFLOW_PAUSED,
                f"workflow {self.workflow_id} is paused; resume() it, or cancel() it",
            )
        if row.status not in WORKFLOW_TERMINAL_STATES:
            return None
        if row.status in (WorkflowStatus.CANCELLED, WorkflowStatus.EXPIRED):
            code = OutcomeCode.WORKFLOW_CANCELLED
            if row.status == WorkflowStatus.EXPIRED:
                code = OutcomeCode.WORKFLOW_EXPIRED
            return error_result(code, row.failed_reason or f"workflow {row.status.lower()}")
        return self._decoded(row)

    def _decoded(self, row: WorkflowRow) -> TaskResult[Any, TaskError]:
        """The stored result: the output node's, or {sink node id: TaskResult | None}."""
        try:
            if row.status == WorkflowStatus.COMPLETED and row.output_index is None:
                nodes = workflow_queries.fetch_nodes(self._alias, self.workflow_id)
                stored = codec.loads(row.result_json or "{}").get("ok") or {}
                sinks = {n.node_id: n for n in nodes if n.node_id in stored}
                return TaskResult(ok={node_id: _node_result(n) for node_id, n in sinks.items()})
            return codec.decode_result(row.result_json, return_adapter(row.output_task_name))
        except (ValueError, TypeError, ImportError, AttributeError) as exc:
            return error_result(
                OperationalErrorCode.RESULT_DESERIALIZATION_ERROR,
                f"stored result of workflow {self.workflow_id} does not decode: {exc}",
            )

    def get(self, timeout_ms: int | None = None) -> TaskResult[Any, TaskError]:
        """Wait for the workflow to end; `WORKFLOW_PAUSED` at once if paused, `WAIT_TIMEOUT`
        when `timeout_ms` passes, `BROKER_ERROR` if the database cannot be read."""
        if timeout_ms is not None and not (
            isinstance(timeout_ms, int | float)
            and not isinstance(timeout_ms, bool)
            and 0 <= timeout_ms <= MAX_WAIT_MS  # False for NaN
        ):
            return error_result(
                RetrievalCode.INVALID_TIMEOUT,
                f"timeout_ms={timeout_ms!r:.100} is not a wait: pass None to wait until workflow "
                f"{self.workflow_id} ends, or milliseconds from 0 to {MAX_WAIT_MS:,}",
            )
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        event = threading.Event()
        WAITERS.add(self.workflow_id, event.set)
        try:
            while True:
                event.clear()
                row = self._row()
                if isinstance(row, Err):
                    return error_result(OperationalErrorCode.BROKER_ERROR, str(row.error))
                final = self._final(row.value)
                if final is not None:
                    return final
                wait = poll_interval_s()
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return error_result(
                            RetrievalCode.WAIT_TIMEOUT,
                            f"workflow {self.workflow_id} did not end within {timeout_ms} ms",
                        )
                    wait = min(wait, left)
                event.wait(wait)
        finally:
            WAITERS.remove(self.workflow_id, event.set)

    # ------------------------------------------------------------------ acting

    def cancel(self) -> BrokerResult[bool]:
        """Cancel the workflow and its children in one commit; Ok(False) if it had ended."""
        return self._read(lambda: workflow_queries.cancel(self._alias, self.workflow_id))

    def pause(self) -> BrokerResult[bool]:
        """Pause a running workflow; Ok(False) when it was not running."""
        return self._read(lambda: workflow_queries.pause(self._alias, self.workflow_id))

    def resume(self) -> BrokerResult[bool]:
        """Resume a paused workflow; Ok(False) when it was not paused."""
        return self._read(lambda: workflow_queries.resume(self._alias, self.workflow_id))

    # ------------------------------------------------------------------ async twins

    async def status_async(self) -> BrokerResult[str | None]:
        return await sync_to_async(self.status, thread_sensitive=True)()

    async def tasks_async(self) -> BrokerResult[list[WorkflowTaskInfo]]:
        return await sync_to_async(self.tasks, thread_sensitive=True)()

    async def results_async(self) -> BrokerResult[dict[str, TaskResult[Any, TaskError]]]:
        return await sync_to_async(self.results, thread_sensitive=True)()

    async def result_for_async(self, node: Any) -> TaskResult[Any, TaskError]:
        return await sync_to_async(self.result_for, thread_sensitive=True)(node)

    async def get_async(self, timeout_ms: int | None = None) -> TaskResult[Any, TaskError]:
        """Waits in a thread of its own (not the event loop's sync thread), whose database
        connection is closed when it is done."""
        return await sync_to_async(self._get_in_own_thread, thread_sensitive=False)(timeout_ms)

    def _get_in_own_thread(self, timeout_ms: int | None) -> TaskResult[Any, TaskError]:
        from django.db import connections

        try:
            return self.get(timeout_ms)
        finally:
            connections.close_all()

    async def cancel_async(self) -> BrokerResult[bool]:
        return await sync_to_async(self.cancel, thread_sensitive=True)()

    async def pause_async(self) -> BrokerResult[bool]:
        return await sync_to_async(self.pause, thread_sensitive=True)()

    async def resume_async(self) -> BrokerResult[bool]:
        return await sync_to_async(self.resume, thread_sensitive=True)()
