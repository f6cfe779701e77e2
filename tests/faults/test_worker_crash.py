"""Fault: the whole worker (parent and children) is SIGKILLed with tasks in flight."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import sql_rows, sql_value, wait_until
from tests.faults.helpers import StartFaultWorker, wait_marker
from tests.faults.invariants import all_settled, assert_invariants
from tests.faults.tasks import sleep_retry
from tests.testapp.tasks import sleep_for

pytestmark = pytest.mark.usefixtures("clean_tables")


def test_second_worker_recovers_tasks_of_a_killed_worker(
    fault_worker: StartFaultWorker, tmp_path: Path
) -> None:
    first = fault_worker("--processes", "4")
    marker = tmp_path / "started"
    plain = [sleep_for.send(seconds=0.6, marker=str(marker)).ok_value for _ in range(12)]
    retried = [sleep_retry.send(seconds=0.6, marker=str(marker)).ok_value for _ in range(12)]
    wait_marker(marker, count=6)
    first_id = first.worker_id()
    in_flight = sql_value(
        "SELECT count(*) FROM horsies_task WHERE status IN ('CLAIMED', 'RUNNING')"
    )
    assert in_flight > 0

    first.kill_group()
    at_kill = {str(r[0]): r[1] for r in sql_rows("SELECT id, status FROM horsies_task")}
    running = {task for task, status in at_kill.items() if status == "RUNNING"}
    unfinished = {task for task, status in at_kill.items() if status != "COMPLETED"}
    assert set(at_kill.values()) & {"CLAIMED", "RUNNING"}, "the kill must leave tasks in flight"
    second = fault_worker("--processes", "4")

    wait_until(all_settled, timeout_s=90, what="every task to settle")
    assert sql_value("SELECT state FROM horsies_worker WHERE id = %s", first_id) == "DEAD"
    assert second.state() == "RUNNING"
    final = {
        str(r[0]): (r[1], r[2]) for r in sql_rows("SELECT id, status, error_code FROM horsies_task")
    }
    for handle in plain:
        expected = (
            ("FAILED", "WORKER_CRASHED") if handle.task_id in running else ("COMPLETED", None)
        )
        assert final[handle.task_id] == expected
    assert all(final[h.task_id] == ("COMPLETED", None) for h in retried)
    crashed = sql_rows(
        "SELECT task_id::text, worker_id::text FROM horsies_task_attempt "
        "WHERE error_code = 'WORKER_CRASHED'"
    )
    assert sorted(task for task, _ in crashed) == sorted(running)
    assert {worker for _, worker in crashed} <= {first_id}
    completed_by = dict(
        sql_rows(
            "SELECT task_id::text, worker_id::text FROM horsies_task_attempt "
            "WHERE outcome = 'COMPLETED'"
        )
    )
    second_id = second.worker_id()
    recovered = {t for t in unfinished if final[t][0] == "COMPLETED"}
    assert recovered
    assert all(completed_by[t] == second_id for t in recovered)
    assert_invariants()
