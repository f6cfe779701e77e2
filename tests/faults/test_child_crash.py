"""Fault: a pool child is SIGKILLed while it runs a task."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.faults.helpers import StartFaultWorker, attempts, task_status, wait_marker
from tests.faults.invariants import assert_invariants
from tests.testapp.tasks import add, sleep_for

pytestmark = pytest.mark.usefixtures("clean_tables")


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
