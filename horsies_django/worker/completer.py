"""Outcomes -> recorded transitions, in batches, on a connection of their own.

`decide()` turns an outcome into its next status (COMPLETED, FAILED, or PENDING again for a
retry). The `Completer` writes whatever has accumulated in one statement and one durable
commit without blocking the supervisor's loop, so recording never holds up dispatching and
outcomes that finish together share an fsync. Outcomes stay queued in memory until the
database accepts them: a dropped connection delays recording but never loses it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg

from horsies_django.db import sql, store
from horsies_django.db.outbox import Outbox
from horsies_django.db.store import Claimed, Finish, Row
from horsies_django.execution import Outcome, now
from horsies_django.retry import RetryPolicy
from horsies_django.types import AttemptOutcome, OutcomeCode, TaskStatus

logger = logging.getLogger("horsies_django.worker")

DB_ERRORS: Final = (psycopg.OperationalError, psycopg.InterfaceError)
MIN_BACKOFF_S: Final = 0.1
MAX_BACKOFF_S: Final = 10.0
MAX_BATCH: Final = 1_000
FINISH: Final = "horsies_finish"
RELEASE: Final = "horsies_release"


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


class Completer:
    """Records outcomes (and released claims) in batches from the supervisor's event loop.

    One statement is in flight at a time on a connection of its own; whatever is submitted
    meanwhile goes in the next one. Nothing here blocks except `stop()`.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection[Row]]) -> None:
        self._connect = connect
        self._outbox: Outbox | None = None
        self._finishes: deque[Finish] = deque()
        self._releases: deque[tuple[str, int]] = deque()
        self._in_flight: list[Finish] | list[tuple[str, int]] = []
        self._isolate = 0  # after a statement error: items to send one at a time
        self._next_connect = 0.0
        self._backoff = MIN_BACKOFF_S

    # -------------------------------------------------------------- called by the supervisor

    def submit(self, finish: Finish) -> None:
        self._finishes.append(finish)

    def release(self, task_id: str, claim_gen: int) -> None:
        """Hand back a claim whose user code never started (it goes back to PENDING)."""
        self._releases.append((task_id, claim_gen))

    def recording(self) -> set[str]:
        """Ids of tasks whose outcome is submitted but not yet recorded."""
        ids = {f.task_id for f in self._finishes}
        ids.update(item.task_id for item in self._in_flight if isinstance(item, Finish))
        return ids

    @property
    def pending(self) -> int:
        """Items submitted and not yet durably recorded."""
        return len(self._finishes) + len(self._releases) + len(self._in_flight)

    def waitable(self) -> Outbox | None:
        """What to wait on (readable) while a statement is in flight."""
        return self._outbox if self._in_flight else None

    def next_wake(self) -> float | None:
        """When to try reconnecting, if outcomes wait for a connection."""
        if self._outbox is None and (self._finishes or self._releases or self._in_flight):
            return self._next_connect
        return None

    def flush(self) -> None:
        """Send the next batch if nothing is in flight."""
        if self._in_flight or not (self._finishes or self._releases):
            return
        outbox = self._outbox or self._open()
        if outbox is None:
            return
        try:
            if self._releases:
                releases = self._take(self._releases)
                self._in_flight = releases
                outbox.send(RELEASE, [store.claims_payload(releases)])
            else:
                finishes = self._take(self._finishes)
                self._in_flight = finishes
                outbox.send(FINISH, [store.finish_payload(finishes)])
        except psycopg.Error as exc:
            self._failed(exc)

    def on_readable(self) -> None:
        """Collect the reply of the statement in flight, then send the next batch."""
        if self._outbox is None:
            return
        try:
            rows = self._outbox.poll()
        except psycopg.Error as exc:
            self._failed(exc)
            return
        if rows is None:
            return
        self._recorded({str(r[0]) for r in rows})
        self.flush()

    def stop(self, timeout_s: float) -> int:
        """Record what is queued (retrying within `timeout_s`); returns what was left over."""
        deadline = time.monotonic() + timeout_s
        while self.pending and (left := deadline - time.monotonic()) > 0:
            self.flush()
            if self._outbox is not None and self._in_flight:
                try:
                    rows = self._outbox.wait(min(left, 0.5))
                except psycopg.Error as exc:
                    self._failed(exc)
                    continue
                if rows is not None:
                    self._recorded({str(r[0]) for r in rows})
            else:
                time.sleep(min(left, max(0.0, self._next_connect - time.monotonic()), 0.5))
        if self._outbox is not None:
            self._outbox.close()
            self._outbox = None
        return self.pending

    # -------------------------------------------------------------- internals

    def _take[T](self, items: deque[T]) -> list[T]:
        size = 1 if self._isolate else MAX_BATCH
        batch = [items.popleft() for _ in range(min(size, len(items)))]
        self._isolate = max(0, self._isolate - len(batch))
        return batch

    def _open(self) -> Outbox | None:
        if time.monotonic() < self._next_connect:
            return None
        try:
            statements = {FINISH: sql.FINISH, RELEASE: sql.RELEASE_CLAIMS}
            self._outbox = Outbox(self._connect(), statements)
        except psycopg.Error as exc:
            self._retry_later(exc)
            return None
        self._backoff = MIN_BACKOFF_S
        return self._outbox

    def _recorded(self, ids: set[str]) -> None:
        for item in self._in_flight:
            if isinstance(item, Finish) and item.task_id not in ids:
                logger.warning(
                    "discarded the late outcome of task %s (claim %s): another claim owns it now",
                    item.task_id,
                    item.claim_gen,
                )
        self._in_flight = []

    def _failed(self, exc: psycopg.Error) -> None:
        """Put the batch back; reconnect later, or isolate a batch the database refused."""
        batch = self._in_flight
        self._in_flight = []
        if batch and isinstance(batch[0], Finish):
            self._finishes.extendleft(reversed(batch))
        else:
            self._releases.extendleft(reversed(batch))  # type: ignore[arg-type]
        if isinstance(exc, DB_ERRORS) or self._outbox is None:
            self._retry_later(exc)
        elif len(batch) > 1:
            logger.error("recording a batch failed (%s); retrying its items one by one", exc)
            self._isolate = len(batch)
        else:
            dropped = batch[0]
            queue_ = self._finishes if isinstance(dropped, Finish) else self._releases
            queue_.popleft()
            logger.error(
                "could not record %r (%s); its lease will expire and the rescuer recovers it",
                dropped,
                exc,
            )

    def _retry_later(self, exc: BaseException) -> None:
        logger.warning("could not record outcomes (%s); retrying in %.1fs", exc, self._backoff)
        if self._outbox is not None:
            with contextlib.suppress(Exception):
                self._outbox.close()
        self._outbox = None
        self._next_connect = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
