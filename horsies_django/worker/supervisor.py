"""The worker parent: one event loop that claims, starts, dispatches and supervises.

Only this process writes task rows. It waits on everything at once (the LISTEN socket, every
child's pipe and process sentinel, a signal pipe). Claims start tasks, and run a little ahead
of the children while tasks are short (a small buffer, none when a concurrency cap applies),
so a child that finishes gets its next task at once. Only children that will be free soon
count: a task running past the short-task threshold is long at once, and held tasks that
would wait behind it (or that were held longer than `HOLD_MAX_S`) are handed back for other
workers. Outcomes are recorded by the completer on its own connection, without blocking.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import psycopg
from uuid_utils.compat import uuid7

from horsies_django.conf import HorsiesSettings, horsies_settings
from horsies_django.db import sql, store
from horsies_django.db.notify import open_listener, pending_notifications
from horsies_django.db.outbox import Outbox
from horsies_django.execution import Outcome, failure
from horsies_django.execution import now as now_utc
from horsies_django.maintenance import expirer, rescuer
from horsies_django.maintenance.leader import Leadership
from horsies_django.types import AttemptOutcome, OperationalErrorCode
from horsies_django.worker import reporting
from horsies_django.worker.child import FAILED, READY
from horsies_django.worker.claims import ClaimPlanner
from horsies_django.worker.completer import Completer, decide, expired
from horsies_django.worker.held import HeldTasks
from horsies_django.worker.pool import Pool, Slot
from horsies_django.worker.readiness import Readiness

logger = logging.getLogger("horsies_django.worker")

DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
MAX_RECONNECT_BACKOFF_S = 10.0
# Claim ahead only while tasks are short, so a busy worker never sits on tasks that an idle
# worker could run: a claim held behind a long task would wait for it.
PREFETCH_MAX_TASK_S = 0.05
# While tasks are short, hold enough ready to keep every child busy for CLAIM_COVER_S (several
# claim round trips with their commits, which slow down on a deep backlog between vacuums), so
# children never wait for the next claim to come back: 1 to PREFETCH_MAX_PER_PROCESS per child.
# Larger claims also walk the claim index's not-yet-vacuumed head less often.
CLAIM_COVER_S = 0.02
PREFETCH_MAX_PER_PROCESS = 16
# A task held (claimed, not yet handed to a child) this long goes back to PENDING, fenced, so
# another worker can run it: claim-ahead never makes work wait on this worker.
HOLD_MAX_S = 0.5
# Children that die before they are ready this many times in a row stop the worker: they would
# be replaced for ever without running anything.
MAX_UNREADY_DEATHS = 3
EXIT_CHILDREN_FAILED = 3
DURATION_SMOOTHING = 0.2
SETTLE_TIMEOUT_S = 30.0
EXIT_CODE_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    processes: int
    queues: tuple[str, ...] | None = None
    max_tasks_per_child: int = 0
    max_memory_per_child_mb: int = 0
    worker_name: str | None = None
    shutdown_timeout_s: float = 30.0
    settings_module: str | None = None


class Supervisor:
    """Runs a worker until it is told to stop; `run()` returns the exit code."""

    def __init__(self, options: WorkerOptions, settings: HorsiesSettings | None = None) -> None:
        self.options = options
        self.settings = settings or horsies_settings()
        self.alias = self.settings.DATABASE_ALIAS
        self.worker_id: uuid.UUID = uuid7()
        self.hostname = socket.gethostname()
        self.name = options.worker_name or f"{self.hostname}:{os.getpid()}"
        self.planner = ClaimPlanner(self.settings, options.queues)
        self.buffer = HeldTasks()
        self.avg_task_s: float | None = None
        params = store.connection_params(self.alias)
        self.completer = Completer(lambda: store.connect_worker(params))
        self.connection_params = params
        self.db: psycopg.Connection[store.Row] | None = None
        self.claims: Outbox | None = None  # claims without blocking, on the `db` connection
        self.claim_in_flight = 0  # the room asked for by the claim awaiting its reply
        self.claim_polled = False
        self.listener: psycopg.Connection[store.Row] | None = None
        self.pool: Pool | None = None
        self.readiness = Readiness()
        self.stopping = False
        self.exit_code = 0
        self.stop_reason: str | None = None
        self.unready_deaths = 0  # children in a row that died before they were ready
        self.forced = False
        self.stop_deadline: float | None = None
        self.signals_seen = 0
        self.last_signal: int | None = None
        self.claim_wanted = True
        self.next_poll = 0.0
        self.next_due: float | None = None
        self.next_heartbeat = 0.0
        self.next_maintenance = 0.0
        self.leadership = Leadership()
        self.next_reconnect = 0.0
        self.reconnect_backoff = 0.2
        self._signal_r, self._signal_w = os.pipe()
        os.set_blocking(self._signal_r, False)
        os.set_blocking(self._signal_w, False)

    @property
    def _pool(self) -> Pool:
        assert self.pool is not None
        return self.pool

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        self._install_signal_handlers()
        self._connect_or_die()
        self.pool = Pool(self.options.processes, self.options.settings_module)
        logger.info(
            "worker %s (%s) started: %d processes, queues %s",
            self.name,
            self.worker_id,
            self.options.processes,
            ", ".join(self.planner.queue_names),
        )
        try:
            while not self._finished():
                self._tick()
        finally:
            self._shutdown()
        return self.exit_code

    def _connect_main(self) -> psycopg.Connection[store.Row]:
        """The claim/heartbeat connection (commits asynchronously: see `sql.ASYNC_SESSION`).

        If this process freezes (SIGSTOP, a stuck VM), PostgreSQL ends the idle session, so the
        maintenance lock it may hold is released. Uncapped claims are sent on it without
        waiting for their reply (see `Outbox`); anything else first settles such a claim."""
        conn = store.connect_worker(self.connection_params)
        store.set_idle_session_timeout(conn, self.settings.WORKER_STALE_AFTER_MS)
        if self.settings.ASYNC_CLAIM_COMMIT:  # opt-in: a server crash can undo started claims
            store.commit_asynchronously(conn)
        self.claims = Outbox(conn, store.CLAIM_STATEMENTS)
        self.claim_in_flight = 0
        return conn

    def _connect_or_die(self) -> None:
        self.db = self._connect_main()
        store.register_worker(
            self.db,
            worker_id=self.worker_id,
            name=self.name,
            hostname=self.hostname,
            pid=os.getpid(),
            processes=self.options.processes,
            queues=self.planner.queue_names,
        )
        self._open_listener()

    def _finished(self) -> bool:
        return self.stopping and not self._pool.busy_slots()

    def _shutdown(self) -> None:
        self._settle_claim()
        self._release_buffer()
        if self.pool is not None:
            self.pool.shutdown()
        left = self.completer.stop(timeout_s=max(5.0, self.options.shutdown_timeout_s))
        if left:
            logger.error("%d outcomes could not be recorded; the rescuer will recover them", left)
        try:
            if self.db is None:
                self._reconnect()
            if self.db is not None:
                store.stop_worker(self.db, self.worker_id, self.stop_reason)
        except DB_ERRORS as exc:
            logger.error("could not mark worker %s stopped: %s", self.worker_id, exc)
        for conn in (self.db, self.listener):
            if conn is not None:
                conn.close()
        self.readiness.close()
        logger.info("worker %s stopped", self.name)

    def _release_buffer(self) -> None:
        """Claims that never started go back to PENDING for other workers."""
        while self.buffer:
            task = self.buffer.next()
            self.completer.release(task.task_id, task.claim_gen)

    # ------------------------------------------------------------------ signals

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals_seen += 1
        self.last_signal = signum
        with contextlib.suppress(OSError):
            os.write(self._signal_w, b"\0")

    def _handle_signals(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._signal_r, 64)
        if self.signals_seen >= 1 and not self.stopping:
            name = signal.Signals(self.last_signal).name if self.last_signal else "a signal"
            self._begin_stop(f"{name} received")
        if self.signals_seen >= 2 and not self.forced:
            self._force_stop("second signal")

    def _begin_stop(self, reason: str) -> None:
        """Claim nothing more, hand back held tasks, let running tasks finish."""
        if self.stopping:
            return
        self.stopping = True
        self.stop_reason = self.stop_reason or reason
        self.stop_deadline = time.monotonic() + self.options.shutdown_timeout_s
        self._settle_claim()
        self._release_buffer()
        busy = len(self._pool.busy_slots())
        logger.info("stopping (%s): no new claims; waiting for %d running task(s)", reason, busy)

    def _fail(self, reason: str) -> None:
        """Stop with a non-zero exit code; `reason` is logged and kept on the worker row."""
        logger.error("worker %s cannot go on: %s", self.name, reason)
        self.exit_code = EXIT_CHILDREN_FAILED
        self.stop_reason = reason
        self._begin_stop(reason)

    def _force_stop(self, why: str) -> None:
        self.forced = True
        logger.warning("%s: killing children; their tasks are recorded as crashed", why)
        for slot in self._pool.busy_slots():
            self._abandon(
                slot,
                OperationalErrorCode.WORKER_CRASHED,
                AttemptOutcome.CRASHED,
                f"worker stopped ({why}) while the task was running",
            )
        self._pool.kill_all()

    # ------------------------------------------------------------------ the loop

    def _tick(self) -> None:
        self._handle_signals()
        now = time.monotonic()
        if self.stopping and not self.forced and self.stop_deadline and now >= self.stop_deadline:
            self._force_stop("shutdown timeout")
        self._check_timeouts(now)
        self._hand_back_held(now)
        if self.db is None and now >= self.next_reconnect:
            self._reconnect()
        if self.listener is None and self.db is not None and now >= self.next_reconnect:
            self._open_listener()
        if self._should_claim(now):
            self._claim()
        self._dispatch()
        if now >= self.next_heartbeat:
            self._heartbeat()
        if now >= self.next_maintenance:
            self._maintain()
        self.completer.flush()
        timeout = max(0.0, self._next_wake() - time.monotonic())
        for obj in self.readiness.wait(self._wait_objects(), timeout):
            self._handle_ready(obj)

    @property
    def _ahead(self) -> int:
        """How many claims to hold beyond the idle children: only while tasks are short, and
        only for children that will be free soon (not those running a task past the threshold)."""
        avg = self.avg_task_s
        if self.planner.capped or avg is None or not self._tasks_short:
            return 0
        soon_free = self.options.processes - len(self._long_running(time.monotonic()))
        wanted = math.ceil(CLAIM_COVER_S / max(avg, 1e-6))
        per_child = min(PREFETCH_MAX_PER_PROCESS, max(1, wanted))
        return per_child * max(0, soon_free)

    def _long_running(self, now: float) -> list[Slot]:
        """Children whose current task has run past the short-task threshold."""
        return [
            slot
            for slot in self._pool.busy_slots()
            if slot.job is not None and now - slot.job.dispatched_at >= PREFETCH_MAX_TASK_S
        ]

    def _hand_back_held(self, now: float) -> None:
        """Held tasks that would wait on this worker go back to PENDING for another worker:
        those beyond the room left once long tasks count, and any held past `HOLD_MAX_S`."""
        if not self.buffer:
            return
        while self.buffer and self.buffer.oldest_age(now) >= HOLD_MAX_S:
            task = self.buffer.next()
            self.completer.release(task.task_id, task.claim_gen)
        if not self._long_running(now) and self._tasks_short:
            return  # the estimate moving between short values is no reason to give work back
        keep = len(self._pool.idle_slots()) + self._ahead
        while len(self.buffer) > keep:
            task = self.buffer.last()
            self.completer.release(task.task_id, task.claim_gen)

    @property
    def _tasks_short(self) -> bool:
        return self.avg_task_s is not None and self.avg_task_s < PREFETCH_MAX_TASK_S

    def _room(self) -> int:
        """How many more tasks this worker may claim now."""
        return len(self._pool.idle_slots()) + self._ahead - len(self.buffer)

    def _may_claim(self) -> bool:
        if self.stopping or self.db is None or self.claim_in_flight or self._room() <= 0:
            return False
        return len(self.buffer) <= self._ahead // 2  # refill in batches, not one by one

    def _should_claim(self, now: float) -> bool:
        if not self._may_claim():
            return False
        due = self.next_due is not None and now >= self.next_due
        return self.claim_wanted or now >= self.next_poll or due

    def _wait_objects(self) -> list[Any]:
        objs: list[Any] = [self._signal_r, *self._pool.wait_objects()]
        if self.listener is not None:
            objs.append(self.listener)
        recording = self.completer.waitable()
        if recording is not None:
            objs.append(recording)
        if self.claim_in_flight and self.claims is not None:
            objs.append(self.claims)
        return objs

    def _next_wake(self) -> float:
        now = time.monotonic()
        wakes = [self.next_heartbeat, self.next_maintenance]
        if self._may_claim():
            wakes.append(self.next_poll)
            if self.claim_wanted:
                wakes.append(now)
            if self.next_due is not None:
                wakes.append(self.next_due)
        if self.buffer and self._pool.idle_slots() and self.db is not None:
            wakes.append(now)
        if self.buffer:
            wakes.append(now + HOLD_MAX_S - self.buffer.oldest_age(now))
            wakes.extend(  # when a running task turns long, what is held for its child goes
                job.dispatched_at + PREFETCH_MAX_TASK_S
                for job in (slot.job for slot in self._pool.busy_slots())
                if job is not None and now - job.dispatched_at < PREFETCH_MAX_TASK_S
            )
        if self.db is None or self.listener is None:
            wakes.append(self.next_reconnect)
        if self.stop_deadline is not None and not self.forced:
            wakes.append(self.stop_deadline)
        reconnect = self.completer.next_wake()
        if reconnect is not None:
            wakes.append(reconnect)
        for slot in self._pool.busy_slots():
            job = slot.job
            assert job is not None
            if job.claimed.timeout_ms:
                wakes.append(job.dispatched_at + job.claimed.timeout_ms / 1000)
        return max(now, min(wakes))

    # ------------------------------------------------------------------ events

    def _handle_ready(self, obj: Any) -> None:
        if obj is self.listener:
            self._drain_notifications()
        elif isinstance(obj, int) and obj == self._signal_r:
            self._handle_signals()
        elif obj is self.completer.waitable():
            self.completer.on_readable()
        elif obj is self.claims and self.claims is not None:
            self._claim_replied(self.claims.poll)
        else:
            slot = self._pool.slot_for(obj)
            if slot is not None:
                self._handle_slot(slot, obj)

    def _drain_notifications(self) -> None:
        listener = self.listener
        assert listener is not None
        try:
            notes = pending_notifications(listener)
        except DB_ERRORS as exc:
            logger.warning("LISTEN connection lost (%s); polling until it is back", exc)
            self._drop_listener()
            return
        for channel, payload in notes:
            if channel == sql.TASK_NEW_CHANNEL:
                self._task_announced(payload)

    def _task_announced(self, payload: str) -> None:
        """A task was sent (or rescheduled): claim now, or wake when it becomes due."""
        queue, _, due_in_ms = payload.partition(" ")
        if queue not in self.planner.queue_names:
            return
        try:
            due_in_s = int(due_in_ms) / 1000
        except ValueError:
            due_in_s = 0.0
        if due_in_s <= 0:
            self.claim_wanted = True
        else:
            self._due_in(due_in_s)

    def _due_in(self, seconds: float) -> None:
        """Wake up to claim when a delayed task or a retry becomes due."""
        due = time.monotonic() + seconds
        self.next_due = due if self.next_due is None else min(self.next_due, due)

    def _handle_slot(self, slot: Slot, obj: Any) -> None:
        if obj is slot.conn:
            try:  # one message per wake-up: the wait reports the pipe again if more is queued
                self._handle_message(slot, slot.conn.recv())
            except (EOFError, OSError):
                self._child_died(slot)
        elif not slot.process.is_alive():
            self._child_died(slot)

    def _handle_message(self, slot: Slot, message: Outcome | tuple[Any, ...]) -> None:
        if isinstance(message, Outcome):
            if slot.job is not None:
                self._record(slot.job.claimed, message, slot.pid)
                self._job_over(slot)
        elif message[0] == READY:
            slot.ready = True
            self.unready_deaths = 0
        elif message[0] == FAILED:
            slot.retiring = True  # it exits now; not replaced while the worker stops
            self._fail(f"the pool's children cannot set up Django:\n{message[1]}")

    def _record(self, claimed: store.Claimed, outcome: Outcome, pid: int | None) -> None:
        outcome = reporting.explain_unresolved(claimed, outcome)
        finish = decide(claimed, outcome, pid, self.worker_id)
        self.completer.submit(finish)
        reporting.report(claimed, outcome, finish, pid)
        if finish.will_retry and finish.retry_delay_s is not None:
            self._due_in(finish.retry_delay_s)

    def _job_over(self, slot: Slot) -> None:
        if slot.job is not None:
            took = time.monotonic() - slot.job.dispatched_at
            avg = self.avg_task_s
            self.avg_task_s = took if avg is None else avg + DURATION_SMOOTHING * (took - avg)
        slot.job = None
        slot.tasks_done += 1
        if self._should_recycle(slot):
            logger.info("recycling child %s after %d tasks", slot.pid, slot.tasks_done)
            self._pool.retire(slot)

    def _should_recycle(self, slot: Slot) -> bool:
        limit = self.options.max_tasks_per_child
        if limit and slot.tasks_done >= limit:
            return True
        mem_limit = self.options.max_memory_per_child_mb
        return bool(mem_limit) and slot.rss_bytes() > mem_limit * 1024 * 1024

    def _child_died(self, slot: Slot) -> None:
        if not slot.ready and not slot.conn.closed:  # its last words: ("failed", traceback)
            with contextlib.suppress(EOFError, OSError):
                while slot.conn.poll(0):
                    self._handle_message(slot, slot.conn.recv())
        if slot.job is not None:
            slot.process.join(timeout=EXIT_CODE_WAIT_S)  # its pipe can close before it is reaped
            code = slot.process.exitcode
            logger.warning(
                "child %s died (exit code %s) running task %s",
                slot.pid,
                code,
                slot.job.claimed.task_id,
            )
            self._abandon(
                slot,
                OperationalErrorCode.WORKER_CRASHED,
                AttemptOutcome.CRASHED,
                f"the child process died (exit code {code}) while running the task",
            )
        elif not slot.ready and not slot.retiring:
            self._died_unready(slot)
        elif not slot.retiring and not self.stopping:
            logger.warning(
                "child %s exited unexpectedly (exit code %s); replacing it",
                slot.pid,
                slot.process.exitcode,
            )
        if self.stopping:
            self._pool.kill(slot)
            return
        self._pool.replace(slot)

    def _died_unready(self, slot: Slot) -> None:
        """A child that dies before it is ready is replaced, but not for ever."""
        slot.process.join(timeout=EXIT_CODE_WAIT_S)
        self.unready_deaths += 1
        code = slot.process.exitcode
        logger.error(
            "child %s died before it was ready (exit code %s; its error is above); %d in a row",
            slot.pid,
            code,
            self.unready_deaths,
        )
        if self.unready_deaths >= MAX_UNREADY_DEATHS and not self.stopping:
            self._fail(
                f"{self.unready_deaths} children in a row died before they were ready "
                f"(last exit code {code}); their error is in the worker's log"
            )

    def _abandon(self, slot: Slot, code: str, outcome: str, message: str) -> None:
        """Record the job of a child that is gone: crashed/timed out if it started, else requeue."""
        job = slot.job
        if job is None:
            return
        started_at = slot.started_at()
        slot.job = None
        if started_at is None:
            self.completer.release(job.claimed.task_id, job.claimed.claim_gen)
            return
        result = failure(code, message, started_at=started_at, outcome=outcome)
        self._record(job.claimed, result, slot.pid)

    def _check_timeouts(self, now: float) -> None:
        for slot in self._pool.busy_slots():
            job = slot.job
            assert job is not None
            timeout_ms = job.claimed.timeout_ms
            if timeout_ms and now - job.dispatched_at >= timeout_ms / 1000:
                logger.warning(
                    "task %s exceeded timeout_ms=%d; killing child %s",
                    job.claimed.task_id,
                    timeout_ms,
                    slot.pid,
                )
                self._abandon(
                    slot,
                    OperationalErrorCode.TASK_TIMEOUT,
                    AttemptOutcome.TIMED_OUT,
                    f"task exceeded its timeout of {timeout_ms} ms",
                )
                if self.stopping:
                    self._pool.kill(slot)
                else:
                    self._pool.replace(slot)

    # ------------------------------------------------------------------ database

    def _claim(self) -> None:
        """Claim up to the room this worker has (idle children plus the prefetch buffer).

        Without caps the claim is sent and its reply collected when it arrives, so children
        that finish meanwhile are served from the buffer; capped claims run synchronously."""
        assert self.db is not None
        assert self.claims is not None
        now = time.monotonic()
        self.claim_polled = now >= self.next_poll
        self.next_poll = now + self.settings.POLL_INTERVAL_MS / 1000
        room = self._room()
        if self.planner.capped:
            try:
                claimed = self.planner.claim(self.db, self.worker_id, room)
            except DB_ERRORS as exc:
                self._db_lost(exc)
                return
            self._claimed(claimed, room)
            return
        statement, params = store.claim_request(
            self.worker_id, self.planner.uncapped(room), room, self.planner.lease_s
        )
        try:
            self.claims.send(statement, params)
        except psycopg.Error as exc:
            self._db_lost(exc)
            return
        self.claim_in_flight = room

    def _claim_replied(self, collect: Callable[[], list[Any] | None]) -> None:
        """Take the reply of the claim in flight, if it is complete."""
        try:
            rows = collect()
        except psycopg.Error as exc:
            self._db_lost(exc)
            return
        if rows is None:
            return
        room, self.claim_in_flight = self.claim_in_flight, 0
        self._claimed([store.claimed_from_row(r) for r in rows], room)

    def _claimed(self, claimed: list[store.Claimed], room: int) -> None:
        self.buffer.add(claimed, time.monotonic())
        self.claim_wanted = len(claimed) >= room  # a full claim suggests a backlog
        if self.claim_polled and not self.claim_wanted:  # notifications carry due times;
            self._refresh_next_due()  # polls cover the ones that were lost

    def _settle_claim(self) -> None:
        """Wait for the claim in flight, so the connection can run something else."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while self.claim_in_flight and self.claims is not None and self.db is not None:
            outbox = self.claims
            left = deadline - time.monotonic()
            if left <= 0:
                self._db_lost(TimeoutError("no reply to a claim"))
                return
            self._claim_replied(functools.partial(outbox.wait, min(left, 1.0)))

    def _dispatch(self) -> None:
        """Hand buffered claims to idle children; one whose good_until passed meanwhile expires."""
        if not self.buffer:
            return
        for slot in self._pool.idle_slots():
            task = self._next_runnable()
            if task is None:
                return
            if not self._pool.dispatch(slot, task):  # the child died since it was idle
                self.completer.release(task.task_id, task.claim_gen)
                self._child_died(slot)

    def _next_runnable(self) -> store.Claimed | None:
        while self.buffer:
            task = self.buffer.next()
            if task.good_until is None or task.good_until > now_utc():
                return task
            self.completer.submit(expired(task, self.worker_id))
            reporting.report_expired(task)
            self.claim_wanted = True
        return None

    def _refresh_next_due(self) -> None:
        """When nothing is eligible, sleep until the earliest delayed task becomes due."""
        self._settle_claim()
        if self.db is None:
            return
        try:
            due = store.next_due_seconds(self.db, self.planner.queue_names)
        except DB_ERRORS as exc:
            self._db_lost(exc)
            return
        self.next_due = None if due is None else time.monotonic() + max(0.0, due)

    def _held(self) -> list[str]:
        running = [s.job.claimed.task_id for s in self._pool.busy_slots() if s.job is not None]
        return [*running, *(c.task_id for c in self.buffer)]

    def _heartbeat(self) -> None:
        self.next_heartbeat = time.monotonic() + self.settings.HEARTBEAT_INTERVAL_MS / 1000
        self._settle_claim()
        if self.db is None:
            return
        state = "STOPPING" if self.stopping else "RUNNING"
        try:
            store.heartbeat(
                self.db,
                self.worker_id,
                held=self._held(),
                lease_s=self.settings.CLAIM_LEASE_MS / 1000,
                state=state,
            )
        except DB_ERRORS as exc:
            self._db_lost(exc)

    def _maintain(self) -> None:
        """If this worker leads, run the rescuer and the expirer once."""
        self.next_maintenance = time.monotonic() + self.settings.RESCUER_INTERVAL_MS / 1000
        self._settle_claim()
        if self.db is None or self.stopping:
            return
        try:
            if self.leadership.held_on(self.db):
                rescuer.run_once(self.db, self.settings)
                expirer.run_once(self.db)
        except DB_ERRORS as exc:
            self._db_lost(exc)

    def _db_lost(self, exc: BaseException) -> None:
        logger.warning("database connection lost (%s); reconnecting", exc)
        if self.db is not None:
            self.db.close()
        self.db = None
        self.claims = None
        self.claim_in_flight = 0  # what it may have claimed is reconciled after reconnecting
        self.leadership.lost()
        self._drop_listener()
        self.next_reconnect = time.monotonic() + self.reconnect_backoff

    def _reconnect(self) -> None:
        try:
            self.db = self._connect_main()
            self._reconcile(self.db)
        except DB_ERRORS as exc:
            self.db = None
            self.reconnect_backoff = min(self.reconnect_backoff * 2, MAX_RECONNECT_BACKOFF_S)
            self.next_reconnect = time.monotonic() + self.reconnect_backoff
            logger.warning("reconnect failed (%s); next try in %.1fs", exc, self.reconnect_backoff)
            return
        logger.info("reconnected to the database")
        self.reconnect_backoff = 0.2
        self.claim_wanted = True
        self.next_heartbeat = 0.0
        self._open_listener()

    def _reconcile(self, db: psycopg.Connection[store.Row]) -> None:
        """After a lost connection, hand back what the database says we hold but we do not run.

        A reply lost with the connection can leave a claim (or a start) committed that this
        process never saw; without this, such a task would wait for the rescuer, or worse, be
        recorded as crashed although it never ran.
        """
        running = {s.job.claimed.task_id for s in self._pool.busy_slots() if s.job is not None}
        recording = self.completer.recording()
        held = {task_id: gen for task_id, gen, _status in store.held_tasks(db, self.worker_id)}
        buffered = {c.task_id: c.claim_gen for c in self.buffer}
        for task_id, gen in held.items():
            if task_id in running or task_id in recording or buffered.get(task_id) == gen:
                continue
            self.completer.release(task_id, gen)
        # A buffered claim the database no longer shows (a crash undid it) is not ours to run.
        self.buffer.keep(lambda c: held.get(c.task_id) == c.claim_gen)

    def _open_listener(self) -> None:
        try:
            self.listener = open_listener(self.alias, [sql.TASK_NEW_CHANNEL])
        except DB_ERRORS as exc:
            logger.warning("could not LISTEN (%s); polling meanwhile", exc)
            self.listener = None
            self.next_reconnect = time.monotonic() + self.reconnect_backoff
            return
        self.claim_wanted = True  # notifications sent while we were not listening are lost

    def _drop_listener(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(Exception):  # it may already be broken
                self.listener.close()
        self.listener = None
        self.next_reconnect = time.monotonic() + self.reconnect_backoff
