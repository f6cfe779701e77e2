"""Decided transitions -> recorded rows, in batches, on a connection of their own.

The `Completer` writes whatever has accumulated (see `outcomes.decide`) in one statement and
one durable commit without blocking the supervisor's loop, so recording never holds up
dispatching and outcomes that finish together share an fsync. Outcomes stay queued in memory
until the database accepts them: a dropped connection delays recording but never loses it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Final

import psycopg

from horsies_django.db import worker_queries
from horsies_django.db.connections import Row
from horsies_django.db.outbox import Outbox
from horsies_django.db.worker_queries import Finish

logger = logging.getLogger("horsies_django.worker")

DB_ERRORS: Final = (psycopg.OperationalError, psycopg.InterfaceError)
MIN_BACKOFF_S: Final = 0.1
MAX_BACKOFF_S: Final = 10.0
MAX_BATCH: Final = 1_000
FINISH: Final = "horsies_finish"
RELEASE: Final = "horsies_release"


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
        self.finished = 0  # outcomes recorded so far

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

    def connect(self) -> None:
        """Open the connection now, warmed up for `FINISH`, rather than at the first outcome (a
        failure is retried then)."""
        if self._outbox is None:
            self._open(warm_up=True)

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
                outbox.send(RELEASE, [worker_queries.claims_payload(releases)])
            else:
                finishes = self._take(self._finishes)
                self._in_flight = finishes
                outbox.send(FINISH, [worker_queries.finish_payload(finishes)])
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
        self._recorded(worker_queries.recorded_ids(rows))
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
                    self._recorded(worker_queries.recorded_ids(rows))
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

    def _open(self, *, warm_up: bool = False) -> Outbox | None:
        if time.monotonic() < self._next_connect:
            return None
        try:
            statements = {FINISH: worker_queries.FINISH, RELEASE: worker_queries.RELEASE_CLAIMS}
            conn = self._connect()
            try:
                if warm_up:
                    worker_queries.warm_up_finish(conn)
                self._outbox = Outbox(conn, statements)
            except BaseException:
                conn.close()
                raise
        except psycopg.Error as exc:
            self._retry_later(exc)
            return None
        self._backoff = MIN_BACKOFF_S
        return self._outbox

    def _recorded(self, ids: set[str]) -> None:
        for item in self._in_flight:
            if isinstance(item, Finish) and item.task_id in ids:
                self.finished += 1
            elif isinstance(item, Finish):
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
