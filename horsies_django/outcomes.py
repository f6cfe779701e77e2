"""Outcome decisions: what an execution's outcome leads to, as the transition to record.

`decide()` turns an outcome into its next status (COMPLETED, FAILED, or PENDING again when the
task's stored retry policy asks for another attempt); `expired()` is the transition of a claim
whose good_until passed before it started. Pure functions of the claimed row and the outcome,
used alike by the worker, eager mode and the rescuer.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from horsies_django import signals
from horsies_django.db.claim import Claimed
from horsies_django.db.worker_queries import Finish
from horsies_django.execution import Outcome, now
from horsies_django.retry import RetryPolicy
from horsies_django.types import AttemptOutcome, OutcomeCode, TaskStatus


def retry_policy_of(claimed: Claimed) -> RetryPolicy | None:
    options: dict[str, Any] = json.loads(claimed.options_json or "{}")
    stored = options.get("retry_policy")
    return None if not stored else RetryPolicy.model_validate(stored)


def decide(claimed: Claimed, outcome: Outcome, pid: int | None, worker_id: Any = None) -> Finish:
    """The transition an outcome leads to, with its retry decision."""
    status = TaskStatus.COMPLETED if outcome.ok else TaskStatus.FAILED
    will_retry, delay = False, None
    if not outcome.ok:
        will_retry, delay = _retry_decision(claimed, outcome)
        if will_retry:
            status = TaskStatus.PENDING
    return Finish(
        task_id=claimed.task_id,
        claim_gen=claimed.claim_gen,
        new_status=status,
        outcome=outcome.outcome,
        result_json=None if will_retry else outcome.result_json,
        error_code=outcome.error_code,
        failed_reason=outcome.message,
        error_message=outcome.message,
        will_retry=will_retry,
        traceback=outcome.traceback,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        retry_delay_s=delay,
        pid=pid,
        worker_id=worker_id,
    )


def expired(claimed: Claimed, worker_id: Any = None) -> Finish:
    """A claim whose good_until passed before it could start: EXPIRED, no attempt."""
    return Finish(
        task_id=claimed.task_id,
        claim_gen=claimed.claim_gen,
        new_status=TaskStatus.EXPIRED,
        outcome=AttemptOutcome.FAILED,
        result_json=None,
        error_code=OutcomeCode.TASK_EXPIRED,
        failed_reason="good_until passed before the task started",
        error_message=None,
        will_retry=False,
        traceback=None,
        started_at=None,
        finished_at=now(),
        retry_delay_s=None,
        pid=None,
        worker_id=worker_id,
    )


def _retry_decision(claimed: Claimed, outcome: Outcome) -> tuple[bool, float | None]:
    policy = retry_policy_of(claimed)
    if policy is None or not policy.retries_on(outcome.error_code):
        return False, None
    if claimed.retry_count >= policy.max_retries:
        return False, None
    delay = policy.delay_seconds(claimed.retry_count + 1)
    if claimed.good_until is not None and _after(outcome.finished_at, delay, claimed.good_until):
        return False, None
    return True, delay


def _after(base: datetime, delay_s: float, deadline: datetime) -> bool:
    return base + timedelta(seconds=delay_s) >= deadline


def announce_retry(claimed: Claimed, outcome: Outcome, finish: Finish) -> None:
    """Send `task_retried` for a decision to retry (worker and eager mode alike)."""
    if not finish.will_retry or not signals.wanted(signals.task_retried, claimed.task_name):
        return
    signals.emit(
        signals.task_retried,
        claimed.task_name,
        task_id=claimed.task_id,
        attempt=claimed.retry_count + 1,
        error_code=outcome.error_code,
        delay_s=finish.retry_delay_s,
    )
