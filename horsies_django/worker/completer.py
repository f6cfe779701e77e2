"""Outcomes -> recorded transitions, in batches, on a thread and connection of their own.

`decide()` turns an outcome into its next status (COMPLETED, FAILED, or PENDING again for a
retry). The `Completer` thread writes whatever has accumulated in one statement and one
durable commit, so recording never holds up dispatching, and concurrent outcomes share an
fsync. Outcomes stay queued in memory until the database accepts them: a dropped connection
delays recording but never loses it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg

from horsies_django.db import store
from horsies_django.db.store import Claimed, Finish, Row
from horsies_django.execution import Outcome
from horsies_django.retry import RetryPolicy
from horsies_django.types import TaskStatus

logger = logging.getLogger("horsies_django.worker")

DB_ERRORS: Final = (psycopg.OperationalError, psycopg.InterfaceError)
MAX_BACKOFF_S: Final = 10.0
MAX_BATCH: Final = 1_000


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


@dataclass(slots=True)
class Batch:
    finishes: list[Finish] = field(default_factory=list)
    releases: list[tuple[str, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.finishes) + len(self.releases)


_STOP: Final = object()


class Completer(threading.Thread):
    """Writes outcomes (and released claims) in batches until stopped and drained."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Row]]) -> None:
        super().__init__(name="horsies-completer", daemon=True)
        self._connect = connect
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = Batch()
        self._lock = threading.Lock()
        self._queued = 0
        self._recording: dict[str, int] = {}
        self._stopping = threading.Event()

    # -------------------------------------------------------------- called by the supervisor

    def submit(self, finish: Finish) -> None:
        with self._lock:
            self._queued += 1
            self._recording[finish.task_id] = self._recording.get(finish.task_id, 0) + 1
        self._inbox.put(finish)

    def recording(self) -> set[str]:
        """Ids of tasks whose outcome is submitted but not yet recorded."""
        with self._lock:
            return set(self._recording)

    def release(self, task_id: str, claim_gen: int) -> None:
        """Hand back a claim whose user code never started (it goes back to PENDING)."""
        self._count(1)
        self._inbox.put((task_id, claim_gen))

    @property
    def pending(self) -> int:
        """Items submitted and not yet durably recorded."""
        with self._lock:
            return self._queued

    def stop(self, timeout_s: float) -> int:
        """Record what is queued (retrying within `timeout_s`); returns what was left over."""
        self._inbox.put(_STOP)
        self.join(timeout_s)
        self._stopping.set()
        self.join(5)
        return self.pending

    # -------------------------------------------------------------- the thread

    def _count(self, n: int) -> None:
        with self._lock:
            self._queued += n

    def _done(self, batch: Batch) -> None:
        with self._lock:
            self._queued -= len(batch)
            for f in batch.finishes:
                left = self._recording.get(f.task_id, 0) - 1
                if left > 0:
                    self._recording[f.task_id] = left
                else:
                    self._recording.pop(f.task_id, None)

    def run(self) -> None:
        conn: psycopg.Connection[Row] | None = None
        backoff = 0.1
        stop_seen = False
        while True:
            stop_seen = self._collect(block=not self._pending and not stop_seen) or stop_seen
            if not self._pending:
                if stop_seen:
                    break
                continue
            try:
                conn = conn or self._connect()
                self._write(conn, self._pending)
            except DB_ERRORS as exc:
                self._drop(conn, exc, backoff)
                conn = None
                if self._stopping.wait(backoff):
                    break
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 0.1
            self._done(self._pending)
            self._pending = Batch()
        if conn is not None:
            conn.close()

    def _collect(self, *, block: bool) -> bool:
        """Move queued items into the pending batch; True once the stop sentinel is seen."""
        try:
            item = self._inbox.get(timeout=0.5) if block else self._inbox.get_nowait()
        except queue.Empty:
            return False
        while True:
            if item is _STOP:
                return True
            if isinstance(item, Finish):
                self._pending.finishes.append(item)
            else:
                self._pending.releases.append(item)
            if len(self._pending) >= MAX_BATCH:
                return False
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return False

    def _write(self, conn: psycopg.Connection[Row], batch: Batch) -> None:
        with conn.pipeline(), conn.transaction():
            if batch.releases:
                store.release_claims(conn, batch.releases)
            recorded = store.finish(conn, batch.finishes) if batch.finishes else set()
        for f in batch.finishes:
            if f.task_id not in recorded:
                logger.warning(
                    "discarded the late outcome of task %s (claim %s): another claim owns it now",
                    f.task_id,
                    f.claim_gen,
                )

    @staticmethod
    def _drop(conn: psycopg.Connection[Row] | None, exc: BaseException, backoff: float) -> None:
        logger.warning("could not record outcomes (%s); retrying in %.1fs", exc, backoff)
        if conn is not None:
            conn.close()
