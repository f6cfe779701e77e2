"""Children are recycled after N tasks or past a memory limit, without failing any task."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import sql_value
from tests.faults.helpers import StartFaultWorker
from tests.faults.invariants import assert_invariants, status_counts
from tests.faults.tasks import hog, whoami

pytestmark = pytest.mark.usefixtures("clean_tables")


def test_max_tasks_per_child_replaces_children(fault_worker: StartFaultWorker) -> None:
    worker = fault_worker("--max-tasks-per-child", "5")
    first_children = set(worker.live_children())
    handles = [h.ok_value for h in whoami.send_many([{"i": i} for i in range(30)])]

    pids = Counter(h.get(timeout_ms=60_000).ok_value for h in handles)

    assert len(pids) >= 6  # 30 tasks, at most 5 per child
    assert max(pids.values()) <= 5
    assert first_children <= set(pids)
    assert not first_children & set(worker.live_children())
    assert "recycling child" in worker.log()
    assert status_counts() == {"COMPLETED": 30}
    assert_invariants()


def test_max_memory_per_child_replaces_bloated_children(fault_worker: StartFaultWorker) -> None:
    worker = fault_worker("--processes", "1", "--max-memory-per-child", "150")
    handles = [h.ok_value for h in hog.send_many([{"megabytes": 60} for _ in range(6)])]

    pids = [h.get(timeout_ms=60_000).ok_value for h in handles]

    assert len(set(pids)) >= 2, f"one child ran every hog: {pids}"
    assert max(Counter(pids).values()) <= 3  # 3 x 60 MB is past the 150 MB limit
    assert "recycling child" in worker.log()
    assert sql_value("SELECT count(*) FROM horsies_task WHERE status <> 'COMPLETED'") == 0
    assert_invariants()
