"""The worker parent: one event loop that claims, dispatches, records and supervises.

Only this process writes task rows. It waits on everything at once (the LISTEN socket, every
child's pipe and process sentinel, a signal pipe) and never claims more than its idle
children can start right away. Outcomes are recorded in one transaction with the next claim.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import wait
from types import FrameType
from typing import Any

import psycopg
from uuid_utils.compat import uuid7

from horsies_django.conf import HorsiesSettings, horsies_settings
from horsies_django.db import sql, store
from horsies_django.db.notify import open_listener, pending_notifications
from horsies_django.execution import Outcome, failure
from horsies_django.maintenance import expirer, rescuer
from horsies_django.maintenance.leader import Leadership
from horsies_django.types import AttemptOutcome, OperationalErrorCode
from horsies_django.worker.claims import ClaimPlanner
from horsies_django.worker.completer import Completer
from horsies_django.worker.pool import Pool, Slot

logger = logging.getLogger("horsies_django.worker")

DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
MAX_RECONNECT_BACKOFF_S = 10.0


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
        self.completer = Completer(self.worker_id)
        self.db: psycopg.Connection[store.Row] | None = None
        self.listener: psycopg.Connection[store.Row] | None = None
        self.pool: Pool | None = None
        self.stopping = False
        self.forced = False
        self.stop_deadline: float | None = None
        self.signals_seen = 0
        self.claim_wanted = True
        self.backlog = False
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
        return 0

    def _connect_or_die(self) -> None:
        self.db = store.connect(self.alias)
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
        pool = self.pool
        assert pool is not None
        if not self.stopping:
            return False
        return not pool.busy_slots() and (self.completer.pending == 0 or self.db is None)

    def _shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        self._write(claim=False)
        try:
            if self.db is None:
                self._reconnect()
            if self.db is not None:
                store.stop_worker(self.db, self.worker_id)
        except DB_ERRORS as exc:
            logger.error("could not mark worker %s stopped: %s", self.worker_id, exc)
        for conn in (self.db, self.listener):
            if conn is not None:
                conn.close()
        if self.completer.pending:
            logger.error(
                "%d outcomes could not be recorded; the rescuer will recover those tasks",
                self.completer.pending,
            )
        logger.info("worker %s stopped", self.name)

    # ------------------------------------------------------------------ signals

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals_seen += 1
        with contextlib.suppress(OSError):
            os.write(self._signal_w, b"\0")

    def _handle_signals(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._signal_r, 64)
        if self.signals_seen >= 1 and not self.stopping:
            self.stopping = True
            self.stop_deadline = time.monotonic() + self.options.shutdown_timeout_s
            busy = len(self.pool.busy_slots()) if self.pool else 0
            logger.info("stopping: no new claims; waiting for %d running task(s)", busy)
        if self.signals_seen >= 2 and not self.forced:
            self._force_stop("second signal")

    def _force_stop(self, why: str) -> None:
        pool = self.pool
        assert pool is not None
        self.forced = True
        logger.warning("%s: killing children; their tasks are recorded as crashed", why)
        for slot in pool.busy_slots():
            self._abandon(
                slot,
                OperationalErrorCode.WORKER_CRASHED,
                AttemptOutcome.CRASHED,
                f"worker stopped ({why}) while the task was running",
            )
        pool.kill_all()

    # ------------------------------------------------------------------ the loop

    def _tick(self) -> None:
        pool = self.pool
        assert pool is not None
        self._handle_signals()
        now = time.monotonic()
        if self.stopping and not self.forced and self.stop_deadline and now >= self.stop_deadline:
            self._force_stop("shutdown timeout")
        self._check_timeouts(now)
        if self.db is None and now >= self.next_reconnect:
            self._reconnect()
        if self.listener is None and self.db is not None and now >= self.next_reconnect:
            self._open_listener()
        claim = self._should_claim(now)
        if self.completer.pending or claim:
            self._write(claim)
        if now >= self.next_heartbeat:
            self._heartbeat()
        if now >= self.next_maintenance:
            self._maintain()
        ready = wait(self._wait_objects(), timeout=max(0.0, self._next_wake() - time.monotonic()))
        for obj in ready:
            self._handle_ready(obj)

    def _should_claim(self, now: float) -> bool:
        pool = self.pool
        assert pool is not None
        if self.stopping or self.db is None or not pool.idle_slots():
            return False
        due = self.next_due is not None and now >= self.next_due
        return self.claim_wanted or now >= self.next_poll or due

    def _wait_objects(self) -> list[Any]:
        pool = self.pool
        assert pool is not None
        objs: list[Any] = [self._signal_r, *pool.wait_objects()]
        if self.listener is not None:
            objs.append(self.listener)
        return objs

    def _next_wake(self) -> float:
        now = time.monotonic()
        pool = self.pool
        assert pool is not None
        wakes = [self.next_heartbeat, self.next_maintenance]
        if pool.idle_slots() and not self.stopping:
            wakes.append(self.next_poll)
            if self.next_due is not None:
                wakes.append(self.next_due)
        if self.db is None or self.listener is None:
            wakes.append(self.next_reconnect)
        if self.stop_deadline is not None and not self.forced:
            wakes.append(self.stop_deadline)
        for slot in pool.busy_slots():
            job = slot.job
            assert job is not None
            if job.claimed.timeout_ms:
                wakes.append(job.dispatched_at + job.claimed.timeout_ms / 1000)
        if self.completer.pending and self.db is None:
            wakes.append(self.next_reconnect)
        return max(now, min(wakes))

    # ------------------------------------------------------------------ events

    def _handle_ready(self, obj: Any) -> None:
        pool = self.pool
        assert pool is not None
        if obj is self.listener:
            self._drain_notifications()
        elif isinstance(obj, int) and obj == self._signal_r:
            self._handle_signals()
        else:
            slot = pool.slot_for(obj)
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

    def _handle_slot(self, slot: Slot, obj: Any) -> None:
        if obj is slot.conn:
            try:
                while not slot.conn.closed and slot.conn.poll():
                    self._handle_message(slot, slot.conn.recv())
            except (EOFError, OSError):
                self._child_died(slot)
        elif not slot.process.is_alive():
            self._child_died(slot)

    def _handle_message(self, slot: Slot, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            slot.ready = True
            self.claim_wanted = True
        elif kind == "started" and slot.job is not None:
            slot.job.started_at = message[3]
        elif kind == "done" and slot.job is not None:
            outcome: Outcome = message[3]
            finish = self.completer.add(slot.job.claimed, outcome, slot.pid)
            if finish.will_retry and finish.retry_delay_s is not None:
                self._due_in(finish.retry_delay_s)
            self._job_over(slot)

    def _job_over(self, slot: Slot) -> None:
        pool = self.pool
        assert pool is not None
        slot.job = None
        slot.tasks_done += 1
        if self.backlog:
            self.claim_wanted = True
        if self._should_recycle(slot):
            logger.info("recycling child %s after %d tasks", slot.pid, slot.tasks_done)
            pool.retire(slot)

    def _should_recycle(self, slot: Slot) -> bool:
        limit = self.options.max_tasks_per_child
        if limit and slot.tasks_done >= limit:
            return True
        mem_limit = self.options.max_memory_per_child_mb
        return bool(mem_limit) and slot.rss_bytes() > mem_limit * 1024 * 1024

    def _child_died(self, slot: Slot) -> None:
        pool = self.pool
        assert pool is not None
        if slot.job is not None:
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
        elif not slot.retiring and not self.stopping:
            logger.warning("child %s exited unexpectedly; replacing it", slot.pid)
        if self.stopping:
            pool.kill(slot)
            return
        pool.replace(slot)

    def _abandon(self, slot: Slot, code: str, outcome: str, message: str) -> None:
        """Record the job of a child that is gone: crashed/timed out if it started, else requeue."""
        job = slot.job
        if job is None:
            return
        slot.job = None
        if job.started_at is None:
            self.completer.add_release(job.claimed)
            return
        result = failure(code, message, started_at=job.started_at, outcome=outcome)
        finish = self.completer.add(job.claimed, result, slot.pid)
        if finish.will_retry and finish.retry_delay_s is not None:
            self._due_in(finish.retry_delay_s)

    def _due_in(self, seconds: float) -> None:
        """Wake up to claim when a retry this worker scheduled becomes due."""
        due = time.monotonic() + seconds
        self.next_due = due if self.next_due is None else min(self.next_due, due)

    def _check_timeouts(self, now: float) -> None:
        pool = self.pool
        assert pool is not None
        for slot in pool.busy_slots():
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
                    pool.kill(slot)
                else:
                    pool.replace(slot)

    # ------------------------------------------------------------------ database

    def _write(self, claim: bool) -> None:
        """Record pending outcomes and claim, in one transaction; then start what was claimed.

        Pipelined, so the whole exchange costs a few round trips whatever the batch size.
        """
        db, pool = self.db, self.pool
        if db is None or pool is None:
            return
        idle = pool.idle_slots() if claim else []
        started: dict[str, int] = {}
        batch = self.completer.take()
        try:
            with db.pipeline():
                with db.transaction():
                    self.completer.write(db, batch)
                    claimed = self.planner.claim(db, self.worker_id, len(idle)) if idle else []
                if claimed:
                    started = store.start_claims(db, self.worker_id)
        except DB_ERRORS as exc:
            self.completer.restore(batch)
            self._db_lost(exc)
            return
        if claim:
            self._after_claim(idle, claimed, started)

    def _after_claim(
        self, idle: list[Slot], claimed: list[store.Claimed], started: dict[str, int]
    ) -> None:
        """Dispatch what was started; hand back anything started that we did not claim now."""
        pool = self.pool
        assert pool is not None
        now = time.monotonic()
        polled = now >= self.next_poll
        self.claim_wanted = False
        self.next_poll = now + self.settings.POLL_INTERVAL_MS / 1000
        self.backlog = len(claimed) >= len(idle)
        runnable = [c for c in claimed if started.get(c.task_id) == c.claim_gen]
        for slot, task in zip(idle, runnable, strict=False):
            pool.dispatch(slot, task)
        known = {c.task_id for c in claimed}
        for task_id, gen in started.items():
            if task_id not in known:  # claimed earlier but never dispatched (e.g. lost reply)
                self.completer.add_release_id(task_id, gen)
        if self.backlog:
            self.claim_wanted = True
        elif polled:  # notifications carry due times; the poll covers lost ones
            self._refresh_next_due()

    def _refresh_next_due(self) -> None:
        """When nothing is eligible, sleep until the earliest delayed task becomes due."""
        if self.db is None:
            return
        try:
            due = store.next_due_seconds(self.db, self.planner.queue_names)
        except DB_ERRORS as exc:
            self._db_lost(exc)
            return
        self.next_due = None if due is None else time.monotonic() + max(0.0, due)

    def _heartbeat(self) -> None:
        self.next_heartbeat = time.monotonic() + self.settings.HEARTBEAT_INTERVAL_MS / 1000
        if self.db is None:
            return
        state = "STOPPING" if self.stopping else "RUNNING"
        try:
            store.heartbeat(
                self.db, self.worker_id, lease_s=self.settings.CLAIM_LEASE_MS / 1000, state=state
            )
        except DB_ERRORS as exc:
            self._db_lost(exc)

    def _maintain(self) -> None:
        """If this worker leads, run the rescuer and the expirer once."""
        self.next_maintenance = time.monotonic() + self.settings.RESCUER_INTERVAL_MS / 1000
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
        self.leadership.lost()
        self._drop_listener()
        self.next_reconnect = time.monotonic() + self.reconnect_backoff

    def _reconnect(self) -> None:
        try:
            self.db = store.connect(self.alias)
        except DB_ERRORS as exc:
            self.reconnect_backoff = min(self.reconnect_backoff * 2, MAX_RECONNECT_BACKOFF_S)
            self.next_reconnect = time.monotonic() + self.reconnect_backoff
            logger.warning("reconnect failed (%s); next try in %.1fs", exc, self.reconnect_backoff)
            return
        logger.info("reconnected to the database")
        self.reconnect_backoff = 0.2
        self.claim_wanted = True
        self.next_heartbeat = 0.0
        self.next_maintenance = 0.0
        self.leadership = Leadership()
        self._open_listener()

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
