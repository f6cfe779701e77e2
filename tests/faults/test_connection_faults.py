"""Faults on the database connections: backends killed under load, the LISTEN socket dropped."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import sql_value, wait_until
from tests.faults.helpers import StartFaultWorker, terminate_backends, worker_backends
from tests.faults.invariants import (
    assert_invariants,
    completed_at_least,
    status_counts,
    wait_settled,
)
from tests.faults.tasks import work

pytestmark = pytest.mark.usefixtures("clean_tables")

TASKS = 600
KILLS = 4
LOST_REPLY = (
    "a start (CLAIMED->RUNNING) committed whose reply was lost with the connection leaves a "
    "RUNNING task that no child runs; the heartbeat renews its lease forever (it renews every "
    "task claimed_by the worker) and the reconnect does not hand it back"
)


def test_terminated_worker_connections_lose_nothing(
    fault_worker: StartFaultWorker, tmp_path: Path
) -> None:
    workers = [fault_worker(), fault_worker()]
    ledger = tmp_path / "ledger"
    work.send_many([{"i": i, "path": str(ledger), "seconds": 0.005} for i in range(TASKS)])
    killed = 0
    for round_ in range(1, KILLS + 1):
        wait_until(
            completed_at_least(round_ * TASKS // (KILLS + 2)), what=f"progress before kill {round_}"
        )
        killed += terminate_backends(worker_backends(workers))
    assert killed >= KILLS * 2  # at least the claim and LISTEN connections of both workers

    wait_settled(timeout_s=30)
    assert status_counts() == {"COMPLETED": TASKS}
    runs = Counter(ledger.read_text().split())
    assert sorted(int(i) for i in runs) == list(range(TASKS))
    assert set(runs.values()) == {1}, "a task ran twice"
    assert sql_value("SELECT count(*) FROM horsies_task_attempt") == TASKS
    assert_invariants()


def test_polling_drains_tasks_when_the_listen_connection_is_dropped(
    fault_worker: StartFaultWorker,
) -> None:
    worker = fault_worker()
    (listener,) = wait_until(
        lambda: worker_backends([worker], listen_only=True), what="the LISTEN backend"
    )
    assert terminate_backends([listener]) == 1
    sent_meanwhile = [h.ok_value for h in work.send_many([{"i": i} for i in range(10)])]
    for handle in sent_meanwhile:
        assert handle.get(timeout_ms=30_000).is_ok()
    wait_until(lambda: "LISTEN connection lost" in worker.log(), what="the loss to be noticed")
    wait_until(
        lambda: [p for p in worker_backends([worker], listen_only=True) if p != listener],
        what="a new LISTEN connection",
    )

    with connection.cursor() as cur:  # this session's inserts fire no NOTIFY trigger
        cur.execute("SET session_replication_role = replica")
    try:
        unannounced = [h.ok_value for h in work.send_many([{"i": i} for i in range(10, 20)])]
    finally:
        with connection.cursor() as cur:
            cur.execute("RESET session_replication_role")
    for handle in unannounced:
        assert handle.get(timeout_ms=30_000).is_ok()
    assert status_counts() == {"COMPLETED": 20}
    assert_invariants()


def test_task_started_for_a_live_worker_whose_reply_was_lost_is_recovered(
    fault_worker: StartFaultWorker,
) -> None:
    worker = fault_worker()
    handle = work.schedule(3600, i=1).ok_value  # not eligible: the worker leaves it alone
    worker_id = worker.worker_id()
    # The state a lost reply leaves: claimed and started for this worker, never dispatched.
    lost = sql_value(
        "UPDATE horsies_task SET status = 'RUNNING', claimed_by = %s, claim_gen = claim_gen + 1,"
        " claimed_at = now(), started_at = now(), claim_expires_at = now() + interval '2 s',"
        " enqueued_at = now() WHERE id = %s RETURNING claim_gen",
        worker_id,
        handle.task_id,
    )
    assert lost == 1
    assert terminate_backends(worker_backends([worker])) >= 1  # the fault that loses replies
    wait_until(lambda: "reconnected to the database" in worker.log(), what="the reconnect")

    # Recovered once its lease (2 s) runs out, by the rescuer (it would stay RUNNING for ever
    # otherwise); the bound is for a slow machine, not the expected delay.
    assert handle.get(timeout_ms=60_000).ok_value == 1
    assert_invariants()
