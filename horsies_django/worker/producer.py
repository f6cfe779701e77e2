"""The producer: claims tasks for this worker and holds them until a child is free.

Invariant: the worker holds no more than its idle children plus what the claim-ahead policy
allows (see `claim_ahead`), and never holds a task another worker could start sooner: held
tasks beyond the policy's room, or held past `HOLD_MAX_S`, are handed back. Uncapped claims are
sent on the `claims` connection without waiting (their reply is read when it arrives); capped
claims run synchronously under the cap lock. It wakes for notifications (of new tasks, and with
capped queues of finished ones), polls every `POLL_INTERVAL_MS`, and sets a timer for delayed
tasks and retries.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

import psycopg

from horsies_django.conf import HorsiesSettings
from horsies_django.db import connections, worker_queries
from horsies_django.db.claim import CLAIM_STATEMENTS, Claimed, claim_request, claimed_from_row
from horsies_django.db.outbox import Outbox
from horsies_django.execution import now as now_utc
from horsies_django.worker import claim_ahead
from horsies_django.worker.claims import ClaimPlanner
from horsies_django.worker.held import HeldTasks
from horsies_django.worker.pool import Pool
from horsies_django.worker.recorder import OutcomeRecorder

DB_ERRORS: Final = (psycopg.OperationalError, psycopg.InterfaceError)
SETTLE_TIMEOUT_S: Final = 30.0

type Connection = psycopg.Connection[connections.Row]


class Producer:
    def __init__(
        self,
        settings: HorsiesSettings,
        planner: ClaimPlanner,
        worker_id: uuid.UUID,
        pool: Pool,
        recorder: OutcomeRecorder,
        lost: Callable[[BaseException], None],
    ) -> None:
        self.settings = settings
        self.planner = planner
        self.worker_id = worker_id
        self.pool = pool
        self.recorder = recorder
        self.lost = lost  # the connections failed: called with the error
        self.held = HeldTasks()
        self.durations = claim_ahead.TaskDurations()
        self.conn: Connection | None = None
        self.outbox: Outbox | None = None
        self.in_flight = 0  # the room asked for by the claim awaiting its reply
        self.polled = False
        self.wanted = True  # claim at the next turn (a notification, a full claim, a restart)
        self.stopped = False
        self.next_poll = 0.0
        self.next_due: float | None = None

    # ------------------------------------------------------------------ connection

    def attach(self, conn: Connection) -> None:
        self.conn = conn
        self.outbox = Outbox(conn, CLAIM_STATEMENTS)
        self.in_flight = 0
        self.wanted = True

    def detach(self) -> None:
        """The connection is gone: what the claim in flight took is reconciled later."""
        self.conn = self.outbox = None
        self.in_flight = 0

    def waitable(self) -> Outbox | None:
        return self.outbox if self.in_flight else None

    # ------------------------------------------------------------------ policy

    def _long_children(self, now: float) -> int:
        return claim_ahead.long_running(
            now - slot.job.dispatched_at for slot in self.pool.busy_slots() if slot.job
        )

    def _ahead(self, now: float) -> int:
        return claim_ahead.ahead(
            processes=self.pool.size,
            capped=self.planner.capped,
            durations=self.durations,
            long_children=self._long_children(now),
        )

    def _room(self, now: float, ahead: int | None = None) -> int:
        ahead = self._ahead(now) if ahead is None else ahead
        return len(self.pool.idle_slots()) + ahead - len(self.held)

    def _may_claim(self, now: float) -> bool:
        if self.stopped or self.outbox is None or self.in_flight:
            return False
        ahead = self._ahead(now)  # walks the busy children once per tick, not twice
        if self._room(now, ahead) <= 0:
            return False
        return len(self.held) <= ahead // 2  # refill in batches, not one by one

    def should_claim(self, now: float) -> bool:
        if not self._may_claim(now):
            return False
        due = self.next_due is not None and now >= self.next_due
        return self.wanted or now >= self.next_poll or due

    # ------------------------------------------------------------------ claiming

    def claim(self, now: float) -> None:
        """Claim up to the room this worker has (idle children plus what it may hold)."""
        assert self.conn is not None
        assert self.outbox is not None
        due = self.next_due is not None and now >= self.next_due
        if due:  # consumed: set again from the database once this claim comes back short
            self.next_due = None
        self.polled = now >= self.next_poll or due
        self.next_poll = now + self.settings.POLL_INTERVAL_MS / 1000
        self.wanted = False  # consumed: a notification from now on asks for the next claim
        room = self._room(now)
        if self.planner.capped:
            try:
                claimed = self.planner.claim(self.conn, self.worker_id, room)
            except DB_ERRORS as exc:
                self.lost(exc)
                return
            self._claimed(claimed, room)
            return
        statement, params = claim_request(
            self.worker_id, self.planner.uncapped(room), room, self.planner.lease_s
        )
        try:
            self.outbox.send(statement, params)
        except psycopg.Error as exc:
            self.lost(exc)
            return
        self.in_flight = room

    def replied(self, collect: Callable[[], list[Any] | None] | None = None) -> None:
        """Take the reply of the claim in flight, if it is complete."""
        if self.outbox is None:
            return
        try:
            rows = (collect or self.outbox.poll)()
        except psycopg.Error as exc:
            self.lost(exc)
            return
        if rows is None:
            return
        room, self.in_flight = self.in_flight, 0
        self._claimed([claimed_from_row(r) for r in rows], room)

    def _claimed(self, claimed: list[Claimed], room: int) -> None:
        self.held.add(claimed, time.monotonic())
        # A full claim suggests a backlog. A short one only says nothing more was committed when
        # it picked its rows: a notification that came while it was in flight still stands.
        self.wanted = self.wanted or len(claimed) >= room
        if self.polled and not self.wanted:  # notifications carry due times; polls and due
            self.refresh_next_due()  # timers look up the next one (a lost one, or a retry's)

    def settle(self) -> None:
        """Wait for the claim in flight (when stopping), so what it took can be handed back."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while self.in_flight and self.outbox is not None:
            outbox = self.outbox
            left = deadline - time.monotonic()
            if left <= 0:
                self.lost(TimeoutError("no reply to a claim"))
                return
            self.replied(functools.partial(outbox.wait, min(left, 1.0)))

    # ------------------------------------------------------------------ holding

    def next_to_run(self) -> Claimed | None:
        """The next held task to start; one whose good_until passed meanwhile expires."""
        while self.held:
            task = self.held.next()
            if task.good_until is None or task.good_until > now_utc():
                return task
            self.recorder.expire(task)
            self.wanted = True
        return None

    def hand_back_waiting(self, now: float) -> None:
        """Held tasks that would wait on this worker go back to PENDING for another worker."""
        if not self.held:
            return
        while self.held and self.held.oldest_age(now) >= claim_ahead.HOLD_MAX_S:
            task = self.held.next()
            self.recorder.hand_back(task.task_id, task.claim_gen)
        excess = claim_ahead.to_hand_back(
            held=len(self.held),
            idle=len(self.pool.idle_slots()),
            ahead_now=self._ahead(now),
            long_children=self._long_children(now),
            tasks_short=self.durations.short,
        )
        for _ in range(excess):
            task = self.held.last()
            self.recorder.hand_back(task.task_id, task.claim_gen)

    def stop(self) -> None:
        """Claim nothing more; hand back everything held (after the claim in flight)."""
        self.stopped = True
        self.settle()
        while self.held:
            task = self.held.next()
            self.recorder.hand_back(task.task_id, task.claim_gen)

    def keep_only(self, in_database: dict[str, int]) -> None:
        """After reconnecting: a held claim the database no longer shows is not ours to run."""
        self.held.keep(lambda c: in_database.get(c.task_id) == c.claim_gen)

    def held_generations(self) -> dict[str, int]:
        return {c.task_id: c.claim_gen for c in self.held}

    # ------------------------------------------------------------------ timers

    def announced(self, payload: str) -> None:
        """A task was sent (or rescheduled): claim at once, or wake when it becomes due."""
        queue, _, due_in_ms = payload.partition(" ")
        if queue not in self.planner.queue_names:
            return
        try:
            due_in_s = int(due_in_ms) / 1000
        except ValueError:
            due_in_s = 0.0
        if due_in_s <= 0:
            self.wanted = True
            now = time.monotonic()
            if self.should_claim(now):  # now, not after the rest of the loop's turn
                self.claim(now)
        else:
            self.due_in(due_in_s)

    def room_freed(self) -> None:
        """Tasks finished (on any worker): if a cap ended the last claim, claim now.

        Without it, a claim cut short by a cap waited for the next poll or send; a claim that
        found no backlog is not repeated for every task that finishes.
        """
        if self.planner.held_back_by_cap:
            self.wanted = True

    def due_in(self, seconds: float) -> None:
        """Wake up to claim when a delayed task or a retry becomes due."""
        due = time.monotonic() + seconds
        self.next_due = due if self.next_due is None else min(self.next_due, due)

    def refresh_next_due(self) -> None:
        """When nothing is eligible, sleep until the earliest delayed task becomes due."""
        if self.conn is None or self.in_flight:
            return
        try:
            due = worker_queries.next_due_seconds(self.conn, self.planner.queue_names)
        except DB_ERRORS as exc:
            self.lost(exc)
            return
        self.next_due = None if due is None else time.monotonic() + max(0.0, due)

    def wakes(self, now: float) -> list[float]:
        """When the producer next needs the loop."""
        wakes: list[float] = []
        if self._may_claim(now):
            wakes.append(self.next_poll)
            if self.wanted:
                wakes.append(now)
            if self.next_due is not None:
                wakes.append(self.next_due)
        if self.held:
            if self.pool.idle_slots() and self.outbox is not None:
                wakes.append(now)
            wakes.append(now + claim_ahead.HOLD_MAX_S - self.held.oldest_age(now))
            wakes.extend(  # when a running task turns long, what is held for its child goes
                job.dispatched_at + claim_ahead.SHORT_TASK_S
                for job in (slot.job for slot in self.pool.busy_slots())
                if job is not None and now - job.dispatched_at < claim_ahead.SHORT_TASK_S
            )
        return wakes
