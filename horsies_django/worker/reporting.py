"""What the worker parent tells operators (log lines) and receivers (signals) about each task.

One line per recorded outcome on the logger `horsies_django.worker.tasks`: a success at INFO,
a domain error or a retry at WARNING, an exception, a crash or a timeout at ERROR with the
traceback. Every line carries the task's fields as `extra` attributes (`task_id`, `task_name`,
`attempt`, `status`, `error_code`, `duration_s`), which the JSON format writes out.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from horsies_django import signals
from horsies_django.db.claim import Claimed
from horsies_django.db.worker_queries import Finish
from horsies_django.django_tasks.names import is_django_task
from horsies_django.execution import Outcome, failure
from horsies_django.outcomes import announce_retry
from horsies_django.types import AttemptOutcome, OperationalErrorCode, TaskStatus

logger = logging.getLogger("horsies_django.worker.tasks")

CRASH_OUTCOMES: Final = frozenset({AttemptOutcome.CRASHED, AttemptOutcome.TIMED_OUT})


def explain_unresolved(claimed: Claimed, outcome: Outcome) -> Outcome:
    """A resolution error that names the module the sender defined the task in."""
    if outcome.error_code != OperationalErrorCode.WORKER_RESOLUTION_ERROR:
        return outcome
    if is_django_task(claimed.task_name):  # not registered by name: the child's message says why
        return outcome
    try:
        module = json.loads(claimed.options_json or "{}").get("module")
    except ValueError:
        module = None
    where = (
        f"the sender defined it in module {module!r}: add that module's app to "
        f"INSTALLED_APPS of this worker's settings (its tasks.py is imported at start-up) or "
        f"{module!r} to HORSIES['TASK_MODULES']"
        if module
        else "deploy the code that defines it to this worker, and check INSTALLED_APPS and "
        "HORSIES['TASK_MODULES']"
    )
    return failure(
        OperationalErrorCode.WORKER_RESOLUTION_ERROR,
        f"no task named {claimed.task_name!r} is registered in this worker; {where}",
        started_at=outcome.started_at,
    )


def report(claimed: Claimed, outcome: Outcome, finish: Finish, pid: int | None) -> None:
    """Log the outcome just decided for `claimed`, and send the retried/crashed signals."""
    attempt = claimed.retry_count + 1
    if outcome.ok:
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "%s[%s] COMPLETED in %.3fs",
                claimed.task_name,
                claimed.task_id,
                _duration(outcome),
                extra=_fields(claimed, outcome, finish, attempt),
            )
        return
    _report_failure(claimed, outcome, finish, attempt)
    announce_retry(claimed, outcome, finish)
    if outcome.outcome in CRASH_OUTCOMES and signals.wanted(
        signals.task_crashed, claimed.task_name
    ):
        signals.emit(
            signals.task_crashed,
            claimed.task_name,
            task_id=claimed.task_id,
            attempt=attempt,
            error_code=outcome.error_code,
            pid=pid,
        )


def report_expired(claimed: Claimed) -> None:
    logger.info(
        "%s[%s] EXPIRED: its good_until passed before a child was free; it never ran",
        claimed.task_name,
        claimed.task_id,
        extra={
            "task_id": claimed.task_id,
            "task_name": claimed.task_name,
            "status": TaskStatus.EXPIRED.value,
        },
    )


def _report_failure(claimed: Claimed, outcome: Outcome, finish: Finish, attempt: int) -> None:
    fields = _fields(claimed, outcome, finish, attempt)
    head = (
        f"{claimed.task_name}[{claimed.task_id}] attempt {attempt} "
        f"{'CRASHED' if outcome.outcome in CRASH_OUTCOMES else 'FAILED'} "
        f"with {outcome.error_code}: {outcome.message}"
    )
    if finish.will_retry:
        logger.warning("%s; retrying in %.1fs", head, finish.retry_delay_s or 0.0, extra=fields)
    elif outcome.traceback:
        logger.error("%s\n%s", head, outcome.traceback.rstrip(), extra=fields)
    elif outcome.outcome in CRASH_OUTCOMES or _is_builtin_failure(outcome):
        logger.error("%s", head, extra=fields)
    else:  # the task returned TaskResult(err=...): a domain outcome, not a bug
        logger.warning("%s", head, extra=fields)


def _is_builtin_failure(outcome: Outcome) -> bool:
    return outcome.error_code in OperationalErrorCode.__members__


def _duration(outcome: Outcome) -> float:
    if outcome.started_at is None:
        return 0.0
    return max(0.0, (outcome.finished_at - outcome.started_at).total_seconds())


def _fields(claimed: Claimed, outcome: Outcome, finish: Finish, attempt: int) -> dict[str, Any]:
    status = TaskStatus.PENDING if finish.will_retry else finish.new_status
    return {
        "task_id": claimed.task_id,
        "task_name": claimed.task_name,
        "attempt": attempt,
        "status": str(status),
        "error_code": outcome.error_code,
        "duration_s": round(_duration(outcome), 6),
    }
