"""Outcome decisions as pure logic (no database): see horsies_django/outcomes.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from horsies_django.db.claim import Claimed
from horsies_django.execution import Outcome, failure, now
from horsies_django.outcomes import decide, expired, retry_policy_of
from horsies_django.retry import RetryPolicy
from horsies_django.types import AttemptOutcome, OutcomeCode, TaskStatus

POLICY = RetryPolicy.fixed([10, 60], auto_retry_for=["TIMEOUT"], jitter=False)


def claimed(
    *, retry_count: int = 0, policy: RetryPolicy | None = POLICY, good_until: datetime | None = None
) -> Claimed:
    options = {"retry_policy": policy.to_stored() if policy else None, "timeout_ms": None}
    return Claimed(
        task_id="t1",
        task_name="shop.charge",
        kwargs_json="{}",
        claim_gen=7,
        retry_count=retry_count,
        options_json=json.dumps(options),
        good_until=good_until,
        timeout_ms=None,
        queue_name="default",
    )


def ok_outcome() -> Outcome:
    started = now()
    return Outcome(True, '{"ok": 1}', None, None, None, started, started)


def timeout_outcome() -> Outcome:
    return failure("TIMEOUT", "upstream timed out", started_at=now())


def test_a_success_completes_with_its_result() -> None:
    finish = decide(claimed(), ok_outcome(), pid=42)
    assert (finish.new_status, finish.will_retry, finish.result_json) == (
        TaskStatus.COMPLETED, False, '{"ok": 1}',
    )  # fmt: skip
    assert (finish.task_id, finish.claim_gen, finish.pid) == ("t1", 7, 42)


def test_a_failure_the_policy_retries_goes_back_to_pending_with_its_delay() -> None:
    finish = decide(claimed(), timeout_outcome(), pid=None)
    assert (finish.new_status, finish.will_retry, finish.retry_delay_s) == (
        TaskStatus.PENDING, True, 10.0,
    )  # fmt: skip
    assert finish.result_json is None  # the result of a retried attempt is not kept
    second = decide(claimed(retry_count=1), timeout_outcome(), pid=None)
    assert second.retry_delay_s == 60.0


def test_a_failure_past_the_last_retry_or_not_listed_fails() -> None:
    exhausted = decide(claimed(retry_count=2), timeout_outcome(), pid=None)
    assert (exhausted.new_status, exhausted.will_retry) == (TaskStatus.FAILED, False)
    other_code = failure("OUT_OF_STOCK", "none left", started_at=now())
    assert decide(claimed(), other_code, pid=None).new_status == TaskStatus.FAILED
    no_policy = decide(claimed(policy=None), timeout_outcome(), pid=None)
    assert no_policy.new_status == TaskStatus.FAILED


def test_no_retry_is_scheduled_past_good_until() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=5)  # the 10 s retry would land after it
    finish = decide(claimed(good_until=soon), timeout_outcome(), pid=None)
    assert (finish.new_status, finish.will_retry) == (TaskStatus.FAILED, False)


def test_an_expired_claim_records_no_attempt_and_no_start() -> None:
    finish = expired(claimed())
    assert (finish.new_status, finish.error_code, finish.started_at) == (
        TaskStatus.EXPIRED, OutcomeCode.TASK_EXPIRED, None,
    )  # fmt: skip
    assert finish.outcome == AttemptOutcome.FAILED


def test_the_stored_policy_is_read_back_from_the_row() -> None:
    assert retry_policy_of(claimed()) == POLICY
    assert retry_policy_of(claimed(policy=None)) is None
