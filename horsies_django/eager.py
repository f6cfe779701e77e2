"""Running sent tasks in the current process, on the caller's database connection.

Used by eager mode (`HORSIES["EAGER"] = True`: a send runs its task at once; `install()`,
called from AppConfig.ready, hands `sending` the runner) and by
`horsies_django.testing.run_pending`. A task goes through the same claim, retry decision and
finish statement as on a worker, so its row, attempts and `handle.get()` look the same; only
the process differs. Nothing here is meant for production traffic.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from django.db import connections

from horsies_django import codec, sending
from horsies_django.conf import horsies_settings
from horsies_django.db import testing_queries, worker_queries
from horsies_django.db.claim import Claimed
from horsies_django.definitions import TaskDefinition
from horsies_django.django_tasks import running as django_tasks
from horsies_django.execution import Outcome, failure, run_task
from horsies_django.handles import TaskHandle
from horsies_django.outcomes import announce_retry, decide
from horsies_django.registered import table
from horsies_django.types import OperationalErrorCode, TaskError, TaskResult, TaskStatus

# The worker id recorded on claims and attempts made in-process.
IN_PROCESS_WORKER_ID: Final = uuid.uuid5(uuid.NAMESPACE_URL, "horsies-django:in-process")
MAX_EAGER_RUNS: Final = 100


@dataclass(frozen=True, slots=True)
class RanTask:
    """One in-process execution: the task's status afterwards and the result it stored."""

    task_id: str
    task_name: str
    status: TaskStatus
    result: TaskResult[Any, TaskError]

    @property
    def handle(self) -> TaskHandle[Any]:
        return TaskHandle(self.task_id, self.task_name)

    @property
    def will_retry(self) -> bool:
        return self.status == TaskStatus.PENDING


def enabled() -> bool:
    return horsies_settings().EAGER


def lease_s() -> float:
    return horsies_settings().CLAIM_LEASE_MS / 1000


def run_claimed(alias: str, claimed: Claimed) -> RanTask:
    """Run a task this process claimed and record the outcome like a worker would."""
    definition = table.get(claimed.task_name)
    outcome = _run_in_savepoint(alias, lambda: _execute(claimed, definition))
    finish = decide(claimed, outcome, os.getpid(), IN_PROCESS_WORKER_ID)
    worker_queries.finish(testing_queries.raw_connection(alias), [finish])
    announce_retry(claimed, outcome, finish)
    adapter = definition.return_adapter if definition is not None else None
    return RanTask(
        task_id=claimed.task_id,
        task_name=claimed.task_name,
        status=TaskStatus(finish.new_status),
        result=_result(outcome, adapter),
    )


def _execute(claimed: Claimed, definition: TaskDefinition | None) -> Outcome:
    """The task's code, run here: a `django.tasks` function by its module path, else the
    registered task of that name (as a worker child chooses)."""
    attempt = claimed.retry_count + 1
    if django_tasks.is_django_task(claimed.task_name):
        return django_tasks.run(
            claimed.task_name, claimed.kwargs_json, task_id=claimed.task_id, attempt=attempt
        )
    return run_task(
        definition, claimed.task_name, claimed.kwargs_json, task_id=claimed.task_id, attempt=attempt
    )


def _run_in_savepoint(alias: str, run: Callable[[], Outcome]) -> Outcome:
    """Run the task; if it broke the caller's open transaction, undo only the task's work."""
    wrapper = connections[alias]
    # The connection's own savepoint API: stable across Django 5.2-6.x (None in autocommit).
    savepoint = wrapper.savepoint() if wrapper.in_atomic_block else None
    outcome: Outcome = run()
    if savepoint is None:
        return outcome
    if wrapper.needs_rollback or testing_queries.transaction_failed(alias):
        wrapper.savepoint_rollback(savepoint)
        wrapper.set_rollback(False)
    else:
        wrapper.savepoint_commit(savepoint)
    return outcome


def _result(outcome: Outcome, adapter: Any) -> TaskResult[Any, TaskError]:
    try:
        return codec.decode_result(outcome.result_json, adapter if outcome.ok else None)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        decoded = failure(
            OperationalErrorCode.RESULT_DESERIALIZATION_ERROR, str(exc), started_at=None
        )
        return codec.decode_result(decoded.result_json, None)


def run_sent(task_id: str) -> RanTask | None:
    """Eager mode: run a just-sent task now, retries included, until it is finished.

    Delays and retry backoffs are skipped. Returns the last run, or None if the task was not
    PENDING (e.g. already run by a nested eager send).
    """
    alias = horsies_settings().DATABASE_ALIAS
    last: RanTask | None = None
    for _ in range(MAX_EAGER_RUNS):
        claimed = testing_queries.claim_by_id(
            alias, task_id, worker_id=IN_PROCESS_WORKER_ID, lease_s=lease_s()
        )
        if claimed is None:
            return last
        last = run_claimed(alias, claimed)
        if not last.will_retry:
            return last
    return last


def run_all_sent(task_ids: Sequence[str]) -> None:
    """Eager mode: run tasks just sent, one after another (see `run_sent`)."""
    for task_id in task_ids:
        run_sent(task_id)


def install() -> None:
    """Make sends run their tasks here when HORSIES['EAGER'] is set."""
    sending.set_eager_runner(run_all_sent)
