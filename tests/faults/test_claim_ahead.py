"""Claim-ahead never strands work: short tasks never wait behind a long one on a busy worker
while another worker is idle.

Worker A has one child, warmed up on short tasks so that it claims ahead. Its child then runs
a long task (held on a release file); worker B is idle. Every short task must run on B while the
long task is still running, whether A held them before the long task turned long or not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import transaction

from tests.conftest import sql_value, wait_until
from tests.faults.helpers import FaultWorker, StartFaultWorker, attempts, task_status, wait_marker
from tests.faults.invariants import assert_invariants
from tests.faults.tasks import gate, whoami

pytestmark = pytest.mark.usefixtures("clean_tables")

SHORT = 8
WARM_UP = 20


def _warmed_up_one_child_worker(fault_worker: StartFaultWorker) -> FaultWorker:
    worker = fault_worker("--processes", "1")
    handles = [r.ok_value for r in whoami.send_many([{"i": i} for i in range(WARM_UP)])]
    wait_until(
        lambda: all(task_status(h.task_id) == "COMPLETED" for h in handles),
        what="the warm-up tasks to complete",
    )
    return worker


def _assert_short_tasks_ran_on(worker: FaultWorker, task_ids: list[str], long_id: str) -> None:
    wait_until(
        lambda: all(task_status(t) == "COMPLETED" for t in task_ids),
        what="every short task to complete while the long one runs",
    )
    assert task_status(long_id) == "RUNNING"
    runners = {attempts(t)[0][4] for t in task_ids}
    assert runners == {worker.worker_id()}


def test_short_tasks_sent_behind_a_long_one_run_on_the_idle_worker(
    fault_worker: StartFaultWorker, tmp_path: Path
) -> None:
    busy = _warmed_up_one_child_worker(fault_worker)
    marker, release = tmp_path / "started", tmp_path / "release"
    long_task = gate.send(release=str(release), marker=str(marker)).ok_value
    wait_marker(marker)
    idle = fault_worker("--processes", "2")

    short = [r.ok_value.task_id for r in whoami.send_many([{"i": i} for i in range(SHORT)])]

    _assert_short_tasks_ran_on(idle, short, long_task.task_id)
    release.touch()
    wait_until(lambda: task_status(long_task.task_id) == "COMPLETED", what="the long task")
    assert attempts(long_task.task_id)[0][4] == busy.worker_id()
    assert_invariants()


def test_tasks_held_before_a_task_turned_long_are_handed_back(
    fault_worker: StartFaultWorker, tmp_path: Path
) -> None:
    busy = _warmed_up_one_child_worker(fault_worker)
    marker, release = tmp_path / "started", tmp_path / "release"
    with transaction.atomic():  # one notification: the busy worker claims all nine at once
        long_task = gate.send(release=str(release), marker=str(marker)).ok_value
        short = [r.ok_value.task_id for r in whoami.send_many([{"i": i} for i in range(SHORT)])]
    wait_marker(marker)
    idle = fault_worker("--processes", "2")

    _assert_short_tasks_ran_on(idle, short, long_task.task_id)
    for task_id in short:  # handed back before they started: one attempt, on the idle worker
        assert len(attempts(task_id)) == 1
    assert sql_value("SELECT count(*) FROM horsies_task WHERE status = 'RUNNING'") == 1
    release.touch()
    wait_until(lambda: task_status(long_task.task_id) == "COMPLETED", what="the long task")
    assert attempts(long_task.task_id)[0][4] == busy.worker_id()
    assert_invariants()
