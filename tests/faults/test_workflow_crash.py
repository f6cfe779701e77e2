"""Fault: workflows advance exactly once while children and whole workers are SIGKILLed.

Advancing happens in the transaction that records a node task's outcome, so a crash either
loses both (the task is rescued, run again, and advances then) or neither.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from horsies_django import WorkflowHandle, app
from tests.conftest import sql_rows, sql_value, wait_until
from tests.faults.helpers import FaultWorker, StartFaultWorker
from tests.faults.invariants import assert_invariants
from tests.faults.tasks import wf_step

pytestmark = pytest.mark.usefixtures("clean_tables")

LAYERS, WIDTH = 10, 20  # 200 nodes
CHILD_KILLS = 8


def layered_dag(rng: random.Random, seconds: float = 0.002) -> Any:
    """LAYERS layers of WIDTH nodes; each node below the first waits for two random nodes of
    the layer above (join all)."""
    nodes: list[Any] = []
    above: list[Any] = []
    for layer in range(LAYERS):
        row = []
        for k in range(WIDTH):
            waits = rng.sample(above, 2) if above else []
            node = wf_step.node(waits_for=waits, node_id=f"n{layer}.{k}")(
                i=layer * WIDTH + k, seconds=seconds
            )
            row.append(node)
        nodes.extend(row)
        above = row
    return app.workflow("crash-safety dag", tasks=nodes)


def nodes_done(workflow_id: str) -> int:
    return int(sql_value("SELECT nodes_done FROM horsies_workflow WHERE id = %s", workflow_id))


def progressed(workflow_id: str, target: int) -> Callable[[], bool]:
    return lambda: nodes_done(workflow_id) >= target


def assert_every_node_ran_once(workflow_id: str, nodes: int) -> None:
    assert sql_rows(
        "SELECT status, count(*) FROM horsies_workflow_node WHERE workflow_id = %s GROUP BY 1",
        workflow_id,
    ) == [("COMPLETED", nodes)]
    # One task per node (never a second row for a node), and each completed exactly once.
    assert sql_rows(
        "SELECT count(*), count(DISTINCT n.task_id) FROM horsies_workflow_node n "
        "JOIN horsies_task t ON t.id = n.task_id WHERE n.workflow_id = %s AND t.status = "
        "'COMPLETED'",
        workflow_id,
    ) == [(nodes, nodes)]
    assert sql_rows("SELECT count(*) FROM horsies_task") == [(nodes,)]
    assert sql_rows(
        "SELECT count(*) FROM (SELECT task_id FROM horsies_task_attempt WHERE outcome = "
        "'COMPLETED' GROUP BY task_id HAVING count(*) > 1) doubled"
    ) == [(0,)]
    assert_invariants()


def _running_child(worker: FaultWorker) -> int | None:
    """A child of `worker` that is alive (not a zombie waiting to be reaped), if any."""
    for pid in worker.live_children():
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return pid
        except psutil.NoSuchProcess:
            continue
    return None


def _kill_a_child(workers: list[FaultWorker], rng: random.Random) -> None:
    """SIGKILL a running child of a random worker, waiting until it has one: right after a
    kill, a worker's replacement may still be starting."""
    worker = rng.choice(workers)
    while True:
        pid = wait_until(lambda: _running_child(worker), what="a running child to kill")
        try:
            os.kill(pid, signal.SIGKILL)
            return
        except ProcessLookupError:  # it died between the look and the kill: pick again
            continue


def test_a_200_node_dag_runs_every_node_once_while_children_are_killed(
    fault_worker: StartFaultWorker,
) -> None:
    rng = random.Random(200)
    handle = layered_dag(rng).start().ok_value
    workers = [fault_worker(wait=False) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()
    for k in range(1, CHILD_KILLS + 1):
        target = k * LAYERS * WIDTH // (CHILD_KILLS + 2)
        wait_until(progressed(handle.workflow_id, target), timeout_s=120, what=f"kill {k}")
        _kill_a_child(workers, rng)
    assert handle.get(timeout_ms=180_000).is_ok()
    assert WorkflowHandle(handle.workflow_id).status().ok_value == "COMPLETED"
    assert_every_node_ran_once(handle.workflow_id, LAYERS * WIDTH)
    assert all(w.proc.poll() is None for w in workers)


def test_killing_whole_workers_while_they_advance_loses_nothing(
    fault_worker: StartFaultWorker,
) -> None:
    """Each worker is SIGKILLed with its children (a machine crash) while nodes finish and
    dependants are enqueued; the next worker's rescuer hands the crashed runs back."""
    rng = random.Random(7)
    handle = layered_dag(rng, seconds=0.01).start().ok_value
    for k in range(1, 4):
        worker = fault_worker()
        target = k * LAYERS * WIDTH // 5
        wait_until(progressed(handle.workflow_id, target), timeout_s=120, what=f"crash {k}")
        worker.kill_group()  # mid-workflow, unless the rest ran first (then it proves less)
    fault_worker()
    assert handle.get(timeout_ms=180_000).is_ok()
    assert_every_node_ran_once(handle.workflow_id, LAYERS * WIDTH)
