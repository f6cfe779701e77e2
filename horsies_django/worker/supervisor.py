"""The worker parent: one event loop that wires the worker's services together.

It waits on everything at once (the LISTEN socket, every child's pipe and sentinel, the claim
and outcome connections, a signal pipe) and lets each service act on what is ready: the
`ConnectionKeeper`, the `Producer` (claims, held tasks), the `Dispatcher` (children), the
`OutcomeRecorder` over the `Completer`, and the `Heartbeat`. It keeps the loop, the signals and
stopping, and reconciling after a reconnect.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

import psycopg
from uuid_utils.compat import uuid7

from horsies_django.conf import HorsiesSettings, horsies_settings
from horsies_django.db import connections, worker_queries
from horsies_django.worker.claims import ClaimPlanner
from horsies_django.worker.completer import Completer
from horsies_django.worker.connections import ConnectionKeeper
from horsies_django.worker.dispatcher import Dispatcher
from horsies_django.worker.heartbeat import Heartbeat
from horsies_django.worker.options import WorkerOptions
from horsies_django.worker.pool import Pool
from horsies_django.worker.producer import Producer
from horsies_django.worker.readiness import Readiness
from horsies_django.worker.recorder import OutcomeRecorder
from horsies_django.worker.startup import Timeline

logger = logging.getLogger("horsies_django.worker")

DB_ERRORS: Final = (psycopg.OperationalError, psycopg.InterfaceError)
EXIT_CHILDREN_FAILED: Final = 3  # the exit status when the pool's children cannot start


class Supervisor:
    """Runs a worker until it is told to stop; `run()` returns the exit code."""

    def __init__(
        self,
        options: WorkerOptions,
        settings: HorsiesSettings | None = None,
        timeline: Timeline | None = None,
    ) -> None:
        self.options = options
        self.timeline = timeline or Timeline()
        self.settings = settings or horsies_settings()
        self.worker_id: uuid.UUID = uuid7()
        self.hostname = socket.gethostname()
        self.name = options.worker_name or f"{self.hostname}:{os.getpid()}"
        self.planner = ClaimPlanner(self.settings, options.queues)
        self.keeper = ConnectionKeeper(self.settings, hear_finished=self.planner.capped)
        params, pooled = self.keeper.params, self.keeper.pooled
        self.completer = Completer(lambda: connections.connect_worker(params, pooled=pooled))
        self.heartbeat = Heartbeat(self.settings, self.worker_id, scheduler=options.scheduler)
        self.readiness = Readiness()
        self.stopping = False
        self.forced = False
        self.exit_code = 0
        self.stop_reason: str | None = None
        self.stop_deadline: float | None = None
        self.signals_seen = 0
        self.last_signal: int | None = None
        self._signal_r, self._signal_w = os.pipe()
        os.set_blocking(self._signal_r, False)
        os.set_blocking(self._signal_w, False)

    # ------------------------------------------------------------------ lifecycle

    def run(self, publish: Callable[[], None] | None = None) -> int:
        """Run until stopped. `publish` (the command's catalogue refresh) runs on a thread of
        its own while this one connects."""
        self._install_signal_handlers()
        # The children start first: they get ready while the parent connects.
        self.pool = Pool(self.options.processes, self.options.settings_module)
        self.timeline.mark("children_started")
        try:
            self._connect_or_die(publish)
        except BaseException:
            self.pool.kill_all()
            raise
        self.timeline.mark("connected")
        self.heartbeat.registered()
        self.recorder = OutcomeRecorder(
            self.completer, self.worker_id, lambda seconds: self.producer.due_in(seconds)
        )
        self.producer = Producer(
            self.settings, self.planner, self.worker_id, self.pool, self.recorder, self._lost
        )
        assert self.keeper.claims is not None
        self.producer.attach(self.keeper.claims)
        self.dispatcher = Dispatcher(
            self.pool,
            self.recorder,
            self.producer.durations,
            self._fail,
            max_tasks_per_child=self.options.max_tasks_per_child,
            max_memory_per_child_mb=self.options.max_memory_per_child_mb,
        )
        logger.info(
            "worker %s (%s) started: %d processes, queues %s",
            self.name,
            self.worker_id,
            self.options.processes,
            ", ".join(self.planner.queue_names),
        )
        try:
            while not (self.stopping and not self.pool.busy_slots()):
                self._tick()
        finally:
            self._shutdown()
        return self.exit_code

    def _connect_or_die(self, publish: Callable[[], None] | None) -> None:
        """Open the connections and register; the LISTEN and outcome connections (and
        `publish`) on threads of their own meanwhile, so that no connect waits for another."""
        jobs = [self.keeper.open_listener, self.completer.connect, *([publish] if publish else [])]
        threads = [threading.Thread(target=job, name="horsies-start-up") for job in jobs]
        for thread in threads:
            thread.start()
        try:
            self.keeper.connect()
            assert self.keeper.main is not None
            worker_queries.register_worker(
                self.keeper.main,
                worker_id=self.worker_id,
                name=self.name,
                hostname=self.hostname,
                pid=os.getpid(),
                processes=self.options.processes,
                queues=self.planner.queue_names,
            )
        finally:
            for thread in threads:
                thread.join()

    def _shutdown(self) -> None:
        self.producer.stop()
        self.pool.shutdown()
        left = self.completer.stop(timeout_s=max(5.0, self.options.shutdown_timeout_s))
        if left:
            logger.error("%d outcomes could not be recorded; the rescuer will recover them", left)
        try:
            if self.keeper.main is None:
                self.keeper.connect()
            assert self.keeper.main is not None
            worker_queries.stop_worker(self.keeper.main, self.worker_id, self.stop_reason)
        except DB_ERRORS as exc:
            logger.error("could not mark worker %s stopped: %s", self.worker_id, exc)
        self.keeper.close()
        self.readiness.close()
        logger.info("worker %s stopped", self.name)

    # ------------------------------------------------------------------ signals and stopping

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
        self.stopping = self.dispatcher.stopping = True
        self.stop_reason = self.stop_reason or reason
        self.stop_deadline = time.monotonic() + self.options.shutdown_timeout_s
        self.producer.stop()
        busy = len(self.pool.busy_slots())
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
        self.dispatcher.kill_running(why)

    # ------------------------------------------------------------------ the loop

    def _tick(self) -> None:
        self._handle_signals()
        now = time.monotonic()
        if self.stopping and not self.forced and self.stop_deadline and now >= self.stop_deadline:
            self._force_stop("shutdown timeout")
        self.dispatcher.check_timeouts(now)
        self.producer.hand_back_waiting(now)
        self._keep_connected(now)
        if self.producer.should_claim(now):
            self.producer.claim(now)
        if self.producer.held:
            self.dispatcher.dispatch(self.producer.next_to_run)
        if self.heartbeat.beat_due(now):
            self._beat()
        if self.heartbeat.maintenance_due(now):
            self._maintain()
        if self.heartbeat.schedule_due(now):
            self._schedule()
        self.completer.flush()
        timeout = max(0.0, self._next_wake() - time.monotonic())
        for obj in self.readiness.wait(self._wait_objects(), timeout):
            self._handle_ready(obj)
        if not self.timeline.complete:
            self._note_startup()

    def _note_startup(self) -> None:
        """Stamp the start-up steps reached (until the first outcome is recorded)."""
        ready = sum(1 for slot in self.pool.slots if slot.ready)
        if ready:
            self.timeline.mark("first_child_ready")
        if ready == len(self.pool.slots):
            self.timeline.mark("children_ready")
        if self.producer.held or self.pool.busy_slots():
            self.timeline.mark("first_claim")
        if self.completer.finished:
            self.timeline.mark("first_completion")

    def _wait_objects(self) -> list[Any]:
        sockets = (self.keeper.listener, self.completer.waitable(), self.producer.waitable())
        return [self._signal_r, *self.pool.wait_objects(), *(s for s in sockets if s is not None)]

    def _next_wake(self) -> float:
        now = time.monotonic()
        wakes = [*self.heartbeat.wakes(), *self.producer.wakes(now)]
        wakes.extend(self.dispatcher.timeout_wakes())
        wakes.extend(w for w in (self.keeper.wake(), self.completer.next_wake()) if w is not None)
        if self.stop_deadline is not None and not self.forced:
            wakes.append(self.stop_deadline)
        return max(now, min(wakes))

    def _handle_ready(self, obj: Any) -> None:
        if obj is self.keeper.listener:
            new, finished = self.keeper.notifications()
            for payload in new:
                self.producer.announced(payload)
            if finished:
                self.producer.room_freed()
        elif isinstance(obj, int) and obj == self._signal_r:
            self._handle_signals()
        elif obj is self.completer.waitable():
            self.completer.on_readable()
        elif obj is self.producer.waitable():
            self.producer.replied()
            if self.producer.held:  # to idle children now, not after the next turn's checks
                self.dispatcher.dispatch(self.producer.next_to_run)
        else:
            slot = self.pool.slot_for(obj)
            if slot is not None:
                self.dispatcher.handle(slot, obj)

    # ------------------------------------------------------------------ the main connection

    def _beat(self) -> None:
        main = self.keeper.main
        if main is None:
            self.heartbeat.skip_beat()
            return
        held = [c.task_id for c in (*self.dispatcher.running(), *self.producer.held)]
        try:
            self.heartbeat.beat(main, held, stopping=self.stopping)
        except DB_ERRORS as exc:
            self._lost(exc)

    def _maintain(self) -> None:
        main = self.keeper.main
        if main is None or self.stopping:
            self.heartbeat.skip_maintenance()
            return
        try:
            self.heartbeat.maintain(main)
        except DB_ERRORS as exc:
            self._lost(exc)

    def _schedule(self) -> None:
        main = self.keeper.main
        if main is None or self.stopping:
            self.heartbeat.skip_schedule()
            return
        try:
            self.heartbeat.schedule(main)
        except DB_ERRORS as exc:
            self._lost(exc)

    def _lost(self, exc: BaseException) -> None:
        """A connection failed: drop them all; what was in flight is reconciled later."""
        self.keeper.lost(exc)
        self.producer.detach()
        self.heartbeat.connection_lost()

    def _keep_connected(self, now: float) -> None:
        if now < self.keeper.next_reconnect:
            return
        if not self.keeper.up and self.keeper.reconnect():
            try:
                assert self.keeper.main is not None
                self._reconcile(self.keeper.main)
            except DB_ERRORS as exc:
                self._lost(exc)
                return
            assert self.keeper.claims is not None
            self.producer.attach(self.keeper.claims)
            self.heartbeat.reconnected()
        if self.keeper.up and self.keeper.listener is None and self.keeper.open_listener():
            self.producer.wanted = True  # notifications sent while we were not listening

    def _reconcile(self, main: psycopg.Connection[connections.Row]) -> None:
        """After a lost connection, hand back what the database says we hold but we do not run.

        A reply lost with the connection can leave a claim committed that this process never
        saw; without this, such a task would wait for the rescuer, or worse, be recorded as
        crashed although it never ran.
        """
        running = {c.task_id for c in self.dispatcher.running()}
        recording = self.completer.recording()
        in_database = worker_queries.held_generations(main, self.worker_id)
        held = self.producer.held_generations()
        for task_id, gen in in_database.items():
            if task_id in running or task_id in recording or held.get(task_id) == gen:
                continue
            self.recorder.hand_back(task_id, gen)
        self.producer.keep_only(in_database)
