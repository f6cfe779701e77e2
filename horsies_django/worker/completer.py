"""Outcomes -> recorded transitions, in batches.

The completer decides each outcome's next status (COMPLETED, FAILED, or PENDING again for a
retry), then writes a whole batch in one statement. Outcomes stay queued in memory until the
database accepts them, so a dropped connection delays recording but never loses it.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from horsies_django.db import store
from horsies_django.db.store import Claimed, Finish, Row
from horsies_django.execution import Outcome
from horsies_django.retry import RetryPolicy
from horsies_django.types import TaskStatus

logger = logging.getLogger("horsies_django.worker")


def retry_policy_of(claimed: Claimed) -> RetryPolicy | None:
    options: dict[str, Any] = json.loads(claimed.options_json or "{}")
    stored = options.get("retry_policy")
    return None if not stored else RetryPolicy.model_validate(stored)


def decide(
    claimed: Claimed, outcome: Outcome, pid: int | None, worker_id: uuid.UUID | None = None
) -> Finish:
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


class Completer:
    """Pending outcomes and released claims, written in batches by `flush()`."""

    def __init__(self, worker_id: uuid.UUID) -> None:
        self.worker_id = worker_id
        self.finishes: list[Finish] = []
        self.releases: list[tuple[str, int]] = []

    def add(self, claimed: Claimed, outcome: Outcome, pid: int | None) -> Finish:
        finish = decide(claimed, outcome, pid, self.worker_id)
        self.finishes.append(finish)
        return finish

    def add_release(self, claimed: Claimed) -> None:
        """Hand back a claim whose user code never started (it goes back to PENDING)."""
        self.releases.append((claimed.task_id, claimed.claim_gen))

    def add_release_id(self, task_id: str, claim_gen: int) -> None:
        self.releases.append((task_id, claim_gen))

    @property
    def pending(self) -> int:
        return len(self.finishes) + len(self.releases)

    def take(self) -> Batch:
        """Everything pending, removed from the queue; `restore` it if the write fails."""
        batch = Batch(self.finishes, self.releases)
        self.finishes, self.releases = [], []
        return batch

    def restore(self, batch: Batch) -> None:
        self.finishes[:0] = batch.finishes
        self.releases[:0] = batch.releases

    def write(self, conn: psycopg.Connection[Row], batch: Batch) -> None:
        """Write a batch inside the caller's transaction (its commit makes it count)."""
        if batch.releases:
            store.release_claims(conn, batch.releases)
        if not batch.finishes:
            return
        recorded = store.finish(conn, batch.finishes)
        for f in batch.finishes:
            if f.task_id not in recorded:
                logger.warning(
                    "discarded the late outcome of task %s (claim %s): another claim owns it now",
                    f.task_id,
                    f.claim_gen,
                )


@dataclass(frozen=True, slots=True)
class Batch:
    finishes: list[Finish]
    releases: list[tuple[str, int]]

    def __bool__(self) -> bool:
        return bool(self.finishes or self.releases)
