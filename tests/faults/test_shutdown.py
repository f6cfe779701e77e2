"""Fault: the worker is asked to stop (SIGTERM) with tasks in flight, then told again."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from tests.conftest import sql_value, wait_until
from tests.faults.helpers import StartFaultWorker, attempts, task_status, wait_marker
from tests.faults.invariants import assert_invariants, status_counts
from tests.faults.tasks import gate
from tests.testapp.tasks import sleep_for

pytestmark = pytest.mark.usefixtures("clean_tables")


def test_sigterm_lets_running_tasks_finish(fault_worker: StartFaultWorker, tmp_path: Path) -> None:
    worker = fault_worker()
    marker, release = tmp_path / "started", tmp_path / "release"
    running = [gate.send(release=str(release), marker=str(marker)).ok_value for _ in range(2)]
    wait_marker(marker, count=2)
    waiting = [sleep_for.send(seconds=0.1).ok_value for _ in range(3)]
    worker_id = worker.worker_id()

    worker.signal(signal.SIGTERM)
    wait_until(lambda: "no new claims" in worker.log(), what="the signal to be handled")
    wait_until(
        lambda: (
            sql_value("SELECT state FROM horsies_worker WHERE id = %s", worker_id) == "STOPPING"
        ),
        what="the worker row to say STOPPING",
    )
    release.touch()

    assert worker.proc.wait(timeout=30) == 0
    for handle in running:
        assert task_status(handle.task_id) == "COMPLETED"
    assert {task_status(h.task_id) for h in waiting} == {"PENDING"}  # never claimed
    assert sql_value("SELECT state FROM horsies_worker WHERE id = %s", worker_id) == "STOPPED"
    assert "waiting for 2 running task(s)" in worker.log()
    assert_invariants()


def test_second_sigterm_kills_children_and_records_crash(
    fault_worker: StartFaultWorker, tmp_path: Path
) -> None:
    worker = fault_worker("--shutdown-timeout", "120")
    marker = tmp_path / "started"
    long_task = sleep_for.send(seconds=120, marker=str(marker)).ok_value
    (child,) = wait_marker(marker)
    wait_until(lambda: task_status(long_task.task_id) == "RUNNING", what="long task RUNNING")
    worker_id = worker.worker_id()

    worker.signal(signal.SIGTERM)
    wait_until(lambda: "no new claims" in worker.log(), what="the first signal to be handled")
    assert worker.proc.poll() is None
    worker.signal(signal.SIGTERM)

    assert worker.proc.wait(timeout=30) == 0
    assert task_status(long_task.task_id) == "FAILED"
    assert [(a[1], a[3], a[5]) for a in attempts(long_task.task_id)] == [
        ("CRASHED", "WORKER_CRASHED", child)
    ]
    assert sql_value("SELECT state FROM horsies_worker WHERE id = %s", worker_id) == "STOPPED"
    assert status_counts() == {"FAILED": 1}
    assert_invariants()


def _group_members(pgid: int) -> list[psutil.Process]:
    """Live processes of process group `pgid` (zombies waiting to be reaped do not count)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_to_the_whole_process_group_lets_running_tasks_finish(
    fault_worker: StartFaultWorker, tmp_path: Path, signum: int
) -> None:
    """dumb-init, `tini -g`, supervisord's stopasgroup, systemd's control-group kill and Ctrl-C
    signal every process of the group: it must behave like a signal to the parent alone."""
    worker = fault_worker()
    marker, release = tmp_path / "started", tmp_path / "release"
    running = [gate.send(release=str(release), marker=str(marker)).ok_value for _ in range(2)]
    children = wait_marker(marker, count=2)
    worker_id = worker.worker_id()

    os.killpg(worker.pid, signum)
    wait_until(lambda: "no new claims" in worker.log(), what="the signal to be handled")
    release.touch()

    assert worker.proc.wait(timeout=60) == 0, worker.log()
    for handle in running:
        assert task_status(handle.task_id) == "COMPLETED"
        ((attempt, outcome, _, code, _, pid),) = attempts(handle.task_id)
        assert (attempt, outcome, code) == (1, "COMPLETED", None)
        assert pid in children
    row = sql_value(
        "SELECT json_build_array(state, stop_reason) FROM horsies_worker WHERE id = %s", worker_id
    )
    assert row == ["STOPPED", f"{signal.Signals(signum).name} received"]
    wait_until(lambda: not _group_members(worker.pid), what="every process of the group to exit")
    assert_invariants()
