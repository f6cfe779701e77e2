"""Outcomes -> recorded transitions, in batches.

The completer decides each outcome's next status (COMPLETED, FAILED, or PENDING again for a
retry), then writes a whole batch in one statement. Outcomes stay queued in memory until the
database accepts them, so a dropped connection delays recording but never loses it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
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
        self.releases: list[Claimed] = []

    def add(self, claimed: Claimed, outcome: Outcome, pid: int | None) -> Finish:
        finish = decide(claimed, outcome, pid, self.worker_id)
        self.finishes.append(finish)
        return finish


    def add_release(self, claimed: Claimed) -> None:
        """Hand back a claim whose user code never started (it goes back to PENDING)."""
        self.releases.append(claimed)

    @property
    def pending(self) -> int:
        return len(self.finishes) + len(self.releases)

    def flush(self, conn: psycopg.Connection[Row]) -> Sequence[Finish]:
        """Write everything pending in one transaction; returns the finishes written.

        Raises psycopg errors (nothing is dropped: the batch is kept for the next try).
        """
        finishes, releases = self.finishes, self.releases
        if not (finishes or releases):
            return []
        with conn.transaction():
            if releases:
                store.release_claims(conn, [(c.task_id, c.claim_gen) for c in releases])
            recorded = store.finish(conn, finishes) if finishes else set()
        self.finishes, self.releases = [], []
        for f in finishes:
            if f.task_id not in recorded:
                logger.warning(
                    "discarded the late outcome of task %s (claim %s): another claim owns it now",
                    f.task_id,
                    f.claim_gen,
                )
        return finishes
