"""The dispatcher: hands held tasks to idle children and follows each child until its task ends.

Invariant: every task handed to a child ends in exactly one recorded way: its outcome from the
child, `WORKER_CRASHED` if the child died after the task's code started, `TASK_TIMEOUT` if it
ran past `timeout_ms` (only that child is killed), or handed back to PENDING if its code never
started. A child that dies is replaced (not while stopping); children that die before they are
ready `MAX_UNREADY_DEATHS` times in a row, or report that Django cannot be set up, stop the
worker through `fail` instead of being replaced for ever.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from horsies_django.db.claim import Claimed
from horsies_django.execution import Outcome, failure
from horsies_django.types import AttemptOutcome, OperationalErrorCode
from horsies_django.worker.child import FAILED, READY
from horsies_django.worker.claim_ahead import TaskDurations
from horsies_django.worker.pool import Pool, Slot
from horsies_django.worker.recorder import OutcomeRecorder

logger = logging.getLogger("horsies_django.worker")

MAX_UNREADY_DEATHS: Final = 3
EXIT_CODE_WAIT_S: Final = 1.0


class Dispatcher:
    def __init__(
        self,
        pool: Pool,
        recorder: OutcomeRecorder,
        durations: TaskDurations,
        fail: Callable[[str], None],
        *,
        max_tasks_per_child: int,
        max_memory_per_child_mb: int,
    ) -> None:
        self.pool = pool
        self.recorder = recorder
        self.durations = durations  # fed with each finished task's duration
        self.fail = fail  # stop the worker with this reason
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child_mb = max_memory_per_child_mb
        self.unready_deaths = 0  # children in a row that died before they were ready
        self.stopping = False

    def dispatch(self, next_task: Callable[[], Claimed | None]) -> None:
        """Hand tasks from `next_task` to idle children while both last."""
        for slot in self.pool.idle_slots():
            task = next_task()
            if task is None:
                return
            if not self.pool.dispatch(slot, task):  # the child died since it was idle
                self.recorder.hand_back(task.task_id, task.claim_gen)
                self.child_died(slot)

    def running(self) -> list[Claimed]:
        return [slot.job.claimed for slot in self.pool.busy_slots() if slot.job is not None]

    # ------------------------------------------------------------------ children's events

    def handle(self, slot: Slot, obj: Any) -> None:
        """`obj` (the slot's pipe or its death sentinel) is readable."""
        if obj is slot.conn:
            try:  # one message per wake-up: the wait reports the pipe again if more is queued
                self._message(slot, slot.conn.recv())
            except (EOFError, OSError):
                self.child_died(slot)
        elif not slot.process.is_alive():
            self.child_died(slot)

    def _message(self, slot: Slot, message: Outcome | tuple[Any, ...]) -> None:
        if isinstance(message, Outcome):
            if slot.job is not None:
                self.recorder.record(slot.job.claimed, message, slot.pid)
                self._job_over(slot)
        elif message[0] == READY:
            slot.ready = True
            self.unready_deaths = 0
        elif message[0] == FAILED:
            slot.retiring = True  # it exits now; not replaced while the worker stops
            self.fail(f"the pool's children cannot set up Django:\n{message[1]}")

    def _job_over(self, slot: Slot) -> None:
        if slot.job is not None:
            self.durations.observe(time.monotonic() - slot.job.dispatched_at)
        slot.job = None
        slot.tasks_done += 1
        if self._should_recycle(slot):
            logger.info("recycling child %s after %d tasks", slot.pid, slot.tasks_done)
            self.pool.retire(slot)

    def _should_recycle(self, slot: Slot) -> bool:
        limit = self.max_tasks_per_child
        if limit and slot.tasks_done >= limit:
            return True
        mem_limit = self.max_memory_per_child_mb
        return bool(mem_limit) and slot.rss_bytes() > mem_limit * 1024 * 1024

    def child_died(self, slot: Slot) -> None:
        if slot.gone:  # reported already (its pipe and its sentinel both say so)
            return
        if not slot.ready and not slot.conn.closed:  # its last words: ("failed", traceback)
            with contextlib.suppress(EOFError, OSError):
                while slot.conn.poll(0):
                    self._message(slot, slot.conn.recv())
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
        self._replace(slot)

    def _replace(self, slot: Slot) -> None:
        if self.stopping:
            self.pool.kill(slot)
        else:
            self.pool.replace(slot)

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
            self.fail(
                f"{self.unready_deaths} children in a row died before they were ready "
                f"(last exit code {code}); their error is in the worker's log"
            )

    def _abandon(self, slot: Slot, code: str, outcome: str, message: str) -> None:
        """Record the task of a child that is gone: crashed or timed out if its code started,
        else handed back."""
        job = slot.job
        if job is None:
            return
        started_at = slot.started_at()
        slot.job = None
        if started_at is None:
            self.recorder.hand_back(job.claimed.task_id, job.claimed.claim_gen)
            return
        result = failure(code, message, started_at=started_at, outcome=outcome)
        self.recorder.record(job.claimed, result, slot.pid)

    # ------------------------------------------------------------------ timeouts and stopping

    def check_timeouts(self, now: float) -> None:
        for slot in self.pool.busy_slots():
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
                self._replace(slot)

    def timeout_wakes(self) -> list[float]:
        return [
            slot.job.dispatched_at + slot.job.claimed.timeout_ms / 1000
            for slot in self.pool.busy_slots()
            if slot.job is not None and slot.job.claimed.timeout_ms
        ]

    def kill_running(self, why: str) -> None:
        """Kill every child; their tasks are recorded crashed (or handed back if not started)."""
        for slot in self.pool.busy_slots():
            self._abandon(
                slot,
                OperationalErrorCode.WORKER_CRASHED,
                AttemptOutcome.CRASHED,
                f"worker stopped ({why}) while the task was running",
            )
        self.pool.kill_all()
