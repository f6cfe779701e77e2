"""The pool of long-lived child processes, one job at a time each.

Each slot owns one child and its pipe. A slot can be killed and refilled on its own (timeout,
crash, recycling), so a problem in one child never touches its siblings.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from horsies_django.db.claim import Claimed
from horsies_django.worker import fork_server, inheritance
from horsies_django.worker.child import STAMP_JOB, STAMP_TIME, child_main

logger = logging.getLogger("horsies_django.worker")

# Children are forked by a fork server that has Django set up (see `fork_server`, `preload`): a
# child is ready in milliseconds instead of importing the project again, and shares nothing
# with the parent (no connection, no thread). It imports with the parent's import path.
_ctx = multiprocessing.get_context("forkserver")


@dataclass(slots=True)
class Running:
    """A job handed to a child, and what the parent knows of its progress."""

    claimed: Claimed
    dispatched_at: float
    number: int  # stamped by the child in shared memory when user code starts


@dataclass(frozen=True, slots=True, eq=False)
class Sentinel:
    """A child's process sentinel as an object of its own, to wait on: a raw descriptor number
    can be closed and reused by another file between two waits, an object cannot."""

    fd: int

    def fileno(self) -> int:
        return self.fd


@dataclass(slots=True)
class Slot:
    index: int
    process: BaseProcess
    conn: Connection
    stamp: Any  # shared [job number, start time]: see worker.child
    death: Sentinel  # readable once the child has exited
    ready: bool = False
    job: Running | None = None
    tasks_done: int = 0
    retiring: bool = False
    gone: bool = False  # killed and not replaced (the worker is stopping): report it no more

    @property
    def idle(self) -> bool:
        return self.ready and self.job is None and not self.retiring and not self.gone

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def started_at(self) -> datetime | None:
        """When the current job's user code started, or None if it never did."""
        if self.job is None or int(self.stamp[STAMP_JOB]) != self.job.number:
            return None
        return datetime.fromtimestamp(self.stamp[STAMP_TIME], UTC)

    def rss_bytes(self) -> int:
        import psutil  # here: only --max-memory-per-child needs it, and it takes 10 ms to import

        try:
            return int(psutil.Process(self.process.pid).memory_info().rss)
        except (psutil.Error, TypeError):
            return 0


class Pool:
    """N child processes forked by a fork server (no state or DB connection is inherited)."""

    def __init__(self, size: int, settings_module: str | None) -> None:
        self.size = size
        self.settings_module = settings_module
        fork_server.prepare(settings_module)  # unless `fork_server.start` ran already
        self.numbers = itertools.count(1)
        self.slots: list[Slot] = [self._start(i) for i in range(size)]

    def _start(self, index: int) -> Slot:
        parent_conn, child_conn = _ctx.Pipe(duplex=True)
        stamp = _ctx.RawArray("d", 2)
        process = _ctx.Process(
            target=child_main,
            args=(child_conn, stamp, self.settings_module),
            name=f"horsies-child-{index}",
            daemon=True,
        )
        with inheritance.handed_over():  # in case this start launches (again) the fork server
            process.start()
        child_conn.close()
        death = Sentinel(process.sentinel)
        return Slot(index=index, process=process, conn=parent_conn, stamp=stamp, death=death)

    def replace(self, slot: Slot) -> Slot:
        """Stop `slot`'s child (kill if needed) and start a fresh one in its place."""
        self.kill(slot)
        fresh = self._start(slot.index)
        self.slots[slot.index] = fresh
        return fresh

    def kill(self, slot: Slot) -> None:
        if slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=5)
        slot.conn.close()
        slot.gone = True

    def idle_slots(self) -> list[Slot]:
        return [s for s in self.slots if s.idle]

    def busy_slots(self) -> list[Slot]:
        return [s for s in self.slots if s.job is not None]

    def dispatch(self, slot: Slot, claimed: Claimed) -> bool:
        """Hand a job to `slot`'s child; False if the child is gone (its pipe is broken)."""
        number = next(self.numbers)
        try:
            slot.conn.send(
                (
                    number,
                    claimed.task_id,
                    claimed.task_name,
                    claimed.kwargs_json,
                    claimed.retry_count + 1,
                )
            )
        except OSError:
            return False
        slot.job = Running(claimed=claimed, dispatched_at=time.monotonic(), number=number)
        return True

    def wait_objects(self) -> list[Any]:
        objs: list[Any] = []
        for slot in self.slots:
            if slot.gone:  # its death was handled: its sentinel stays readable for ever
                continue
            if not slot.conn.closed:
                objs.append(slot.conn)
            objs.append(slot.death)
        return objs

    def slot_for(self, obj: Any) -> Slot | None:
        for slot in self.slots:
            if obj is slot.conn or obj is slot.death:
                return slot
        return None

    def retire(self, slot: Slot) -> None:
        """Ask an idle child to exit after its current job; it is replaced when it does."""
        slot.retiring = True
        if slot.job is None:
            self._ask_exit(slot)

    def _ask_exit(self, slot: Slot) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            slot.conn.send(None)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Ask every child to exit, then kill whatever is left."""
        for slot in self.slots:
            if slot.process.is_alive():
                self._ask_exit(slot)
        deadline = time.monotonic() + timeout_s
        for slot in self.slots:
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=5)
            slot.conn.close()

    def kill_all(self) -> None:
        for slot in self.slots:
            if slot.process.is_alive():
                slot.process.kill()
        for slot in self.slots:
            slot.process.join(timeout=5)
            slot.conn.close()
