"""Fault: a pool child is SIGKILLed while it runs a task."""

from __future__ import annotations

import contextlib
import os
import random
import signal
from pathlib import Path

import pytest

from tests.conftest import sql_rows, wait_until
from tests.faults.helpers import (
    FaultWorker,
    StartFaultWorker,
    attempts,
    task_status,
    wait_marker,
)
from tests.faults.invariants import assert_invariants, status_counts, wait_settled
from tests.faults.tasks import work
from tests.testapp.tasks import add, sleep_for

pytestmark = pytest.mark.usefixtures("clean_tables")

STREAM = 2_000
STREAM_KILLS = 12


def test_killed_child_records_crash_and_worker_keeps_serving(
    fault_worker: StartFaultWorker, tmp_path: Path
) -> None:
    worker = fault_worker()
    victim_marker, sibling_marker = tmp_path / "victim", tmp_path / "sibling"
    victim = sleep_for.send(seconds=60, marker=str(victim_marker)).ok_value
    (victim_pid,) = wait_marker(victim_marker)
    sibling = sleep_for.send(seconds=1.5, marker=str(sibling_marker)).ok_value
    (sibling_pid,) = wait_marker(sibling_marker)
    assert victim_pid != sibling_pid
    assert set(worker.live_children()) == {victim_pid, sibling_pid}

    os.kill(victim_pid, signal.SIGKILL)

    wait_until(lambda: task_status(victim.task_id) == "FAILED", what="victim recorded FAILED")
    assert [(a[1], a[2], a[3], a[5]) for a in attempts(victim.task_id)] == [
        ("CRASHED", False, "WORKER_CRASHED", victim_pid)
    ]
    assert sibling.get(timeout_ms=30_000).ok_value == "slept"
    assert [a[5] for a in attempts(sibling.task_id)] == [sibling_pid]
    wait_until(
        lambda: len(worker.live_children()) == 2 and victim_pid not in worker.live_children(),
        what="the dead child to be replaced",
    )
    after = add.send(a=20, b=22).ok_value
    assert after.get(timeout_ms=30_000).ok_value == 42
    assert worker.proc.poll() is None
    assert "died (exit code -9)" in worker.log()
    assert_invariants()


DISPATCH_TO_DEAD_CHILD = (
    "Pool.dispatch() writes to the pipe of a child that died after the last wait() and before "
    "the dispatch; the BrokenPipeError is not caught and kills the whole worker parent"
)


def ready_children(worker: FaultWorker) -> list[int]:
    """Live children that have run a task. One killed while still starting counts toward the
    worker's crash-loop guard (3 such deaths in a row stop it): that is not this fault."""
    ran = {pid for (pid,) in sql_rows("SELECT DISTINCT pid FROM horsies_task_attempt")}
    return [pid for pid in worker.live_children() if pid in ran]


def test_worker_survives_children_killed_between_tasks(fault_worker: StartFaultWorker) -> None:
    """The stream is sent in one chunk per kill. Each kill waits until half of its chunk is
    done: the children that ran those tasks started after the previous kill and are alive, so
    there is always a child past start-up to kill, however fast the stream drains. (Sent as one
    batch, the stream once ran out while both live children were fresh replacements.)"""
    worker = fault_worker()
    rng = random.Random(7)
    chunk = STREAM // (STREAM_KILLS + 1)
    sizes = [chunk] * STREAM_KILLS + [STREAM - chunk * STREAM_KILLS]
    sent = kills = 0
    for k, size in enumerate(sizes, start=1):
        work.send_many([{"i": sent + i} for i in range(size)])
        target = sent + size // 2
        sent += size
        if k > STREAM_KILLS:
            break

        def progressed(target: int = target) -> bool:
            return worker.proc.poll() is not None or status_counts().get("COMPLETED", 0) >= target

        wait_until(progressed, what=f"progress before kill {k}")
        assert worker.proc.poll() is None, f"the worker died after {kills} kill(s):\n{worker.log()}"
        children = ready_children(worker)
        assert children, f"no live child has run a task of chunk {k}:\n{worker.log()}"
        with contextlib.suppress(ProcessLookupError):
            os.kill(rng.choice(children), signal.SIGKILL)
            kills += 1
    wait_settled(timeout_s=60)
    assert worker.proc.poll() is None, f"the worker died:\n{worker.log()}"
    assert status_counts() == {"COMPLETED": STREAM}
    assert kills == STREAM_KILLS
    assert_invariants()
