"""Fault: several workers race on thousands of tasks while their children are SIGKILLed."""

from __future__ import annotations

import os
import random
import signal

import pytest

from tests.conftest import sql_value, wait_until
from tests.faults.helpers import FaultWorker, StartFaultWorker
from tests.faults.invariants import (
    assert_invariants,
    completed_at_least,
    status_counts,
    wait_settled,
)
from tests.faults.tasks import work

pytestmark = pytest.mark.usefixtures("clean_tables")

TASKS = 5_000
KILLS = 8


def _kill_a_child(workers: list[FaultWorker], rng: random.Random) -> bool:
    """SIGKILL one random child of one random worker; False if none was found."""
    worker = rng.choice(workers)
    children = worker.live_children()
    if not children:
        return False
    try:
        os.kill(rng.choice(children), signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("n_workers", [2, 3])
def test_racing_workers_with_child_kills_complete_every_task_once(
    fault_worker: StartFaultWorker, n_workers: int
) -> None:
    rng = random.Random(n_workers)
    results = work.send_many([{"i": i, "seconds": 0.002} for i in range(TASKS)])
    assert all(r.is_ok() for r in results)
    workers = [fault_worker(wait=False) for _ in range(n_workers)]
    for worker in workers:
        worker.wait_ready()
    kills = 0
    for k in range(1, KILLS + 1):
        wait_until(
            completed_at_least(k * TASKS // (KILLS + 2)),
            timeout_s=120,
            what=f"progress before kill {k}",
        )
        dead = [w.log() for w in workers if w.proc.poll() is not None]
        assert not dead, f"a worker died after {kills} kill(s):\n{dead[0]}"
        kills += _kill_a_child(workers, rng)
    assert kills >= KILLS - 1

    wait_settled(timeout_s=120)
    assert status_counts() == {"COMPLETED": TASKS}
    assert (
        sql_value(
            "SELECT count(DISTINCT worker_id) FROM horsies_task_attempt WHERE outcome = 'COMPLETED'"
        )
        == n_workers
    )
    crashed = sql_value(
        "SELECT count(*) FROM horsies_task_attempt WHERE error_code = 'WORKER_CRASHED'"
    )
    logged = sum(w.log().count("died (exit code -9) running task") for w in workers)
    assert crashed <= logged  # a kill before user code started only hands the claim back
    assert all(w.proc.poll() is None for w in workers)
    wait_until(lambda: all(len(w.live_children()) == 2 for w in workers), what="children replaced")
    assert_invariants()
