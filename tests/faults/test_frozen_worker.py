"""Fault: a worker is frozen (SIGSTOP) past its lease, and wakes up after another took over."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.conftest import database_url, sql_value, wait_until
from tests.faults.helpers import (
    FaultWorker,
    StartFaultWorker,
    attempts,
    leads_maintenance,
    local_ports,
    rows,
    task_status,
    wait_marker,
)
from tests.faults.invariants import assert_invariants
from tests.faults.tasks import gate, hold_retry

pytestmark = pytest.mark.usefixtures("clean_tables")


def test_late_outcome_of_a_frozen_worker_is_fenced_off(
    fault_worker: StartFaultWorker, tmp_path: Path
) -> None:
    rescuer = fault_worker("--processes", "1")
    wait_until(lambda: leads_maintenance(rescuer), what="the first worker to lead maintenance")
    busy_marker, release = tmp_path / "busy", tmp_path / "release"
    gate.send(release=str(release), marker=str(busy_marker))  # holds the leader's only child
    wait_marker(busy_marker)
    frozen = fault_worker("--processes", "1")
    marker = tmp_path / "target"
    # Held until the parent is frozen: its child then finishes it, but cannot report it.
    target = hold_retry.send(release=str(release), marker=str(marker)).ok_value
    (frozen_child,) = wait_marker(marker)
    assert frozen.live_children() == [frozen_child]
    wait_until(lambda: task_status(target.task_id) == "RUNNING", what="target RUNNING")
    frozen_id, rescuer_id = frozen.worker_id(), rescuer.worker_id()

    os.kill(frozen.pid, signal.SIGSTOP)  # the parent only: its child finishes the task
    release.touch()  # frees the rescuer's child and lets the frozen worker's child finish
    result = target.get(timeout_ms=60_000)

    assert result.is_ok()
    assert result.ok_value != frozen_child
    assert result.ok_value in rescuer.live_children()
    before = attempts(target.task_id)
    assert [(a[1], a[2], a[3], a[4]) for a in before] == [
        ("CRASHED", True, "WORKER_CRASHED", frozen_id),
        ("COMPLETED", False, None, rescuer_id),
    ]
    assert sql_value("SELECT state FROM horsies_worker WHERE id = %s", frozen_id) == "DEAD"
    row_before = sql_value(
        "SELECT row_to_json(t)::text FROM horsies_task t WHERE id = %s", target.task_id
    )

    os.kill(frozen.pid, signal.SIGCONT)
    wait_until(
        lambda: "discarded the late outcome" in frozen.log(), what="the late outcome discarded"
    )
    assert f"discarded the late outcome of task {target.task_id}" in frozen.log()
    assert attempts(target.task_id) == before
    assert row_before == sql_value(
        "SELECT row_to_json(t)::text FROM horsies_task t WHERE id = %s", target.task_id
    )
    assert frozen.proc.poll() is None
    assert_invariants()


def test_tasks_of_a_frozen_maintenance_leader_are_recovered(
    fault_worker: StartFaultWorker, tmp_path: Path
) -> None:
    leader = fault_worker("--processes", "1")
    wait_until(lambda: leads_maintenance(leader), what="the first worker to lead maintenance")
    marker, release = tmp_path / "target", tmp_path / "release"
    # Held in the leader's child until the leader is frozen, however long the second worker
    # takes to start.
    target = hold_retry.send(release=str(release), marker=str(marker)).ok_value
    wait_marker(marker, count=1)  # user code started in the leader's child
    assert task_status(target.task_id) == "RUNNING"
    other = fault_worker("--processes", "1")
    leader_id = leader.worker_id()

    os.kill(leader.pid, signal.SIGSTOP)
    release.touch()  # the leader's child finishes, but its outcome is never recorded

    # lease (2 s) + stale threshold (2 s) + a few rescuer intervals (0.3 s) and claim polls
    wait_until(
        lambda: sql_value("SELECT state FROM horsies_worker WHERE id = %s", leader_id) == "DEAD",
        what="the frozen leader to be marked DEAD",
    )
    assert target.get(timeout_ms=30_000).ok_value in other.live_children()


def _leader_backend(worker: FaultWorker) -> tuple[int, str, str | None] | None:
    """(backend pid, state, wait event type) of the session holding the maintenance lock."""
    from horsies_django.maintenance.leader import LEADER_LOCK_KEY

    found = rows(
        worker.url,
        "SELECT a.pid, a.state, a.wait_event_type, a.client_port FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.objid = %s::bigint::oid",
        LEADER_LOCK_KEY,
    )
    local = local_ports(worker.pid)
    mine = [(int(pid), str(state), wait) for pid, state, wait, port in found if port in local]
    return mine[0] if mine else None


def test_a_leader_frozen_inside_a_maintenance_transaction_is_replaced(
    fault_worker: StartFaultWorker,
) -> None:
    """A leader frozen between two statements of the rescuer's transaction leaves its session
    "idle in transaction", where `idle_session_timeout` does not apply: without a timeout for
    that state too, it would hold the maintenance lock for ever and nobody would rescue."""
    leader = fault_worker("--processes", "1")
    wait_until(lambda: leads_maintenance(leader), what="the first worker to lead maintenance")
    decoy = str(uuid.uuid4())
    with psycopg.connect(leader.url or database_url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO horsies_worker (id, name, hostname, pid, processes, queues, state, "
            "started_at, heartbeat_at) VALUES (%s, 'decoy', 'decoy', 1, 1, '[]', 'RUNNING', "
            "now(), now())",
            (decoy,),
        )
    with psycopg.connect(leader.url or database_url()) as blocker:
        # Lock the decoy's row: once its heartbeat is stale, the leader's rescuer transaction
        # blocks on it in its first statement.
        blocker.execute("SELECT 1 FROM horsies_worker WHERE id = %s FOR UPDATE", (decoy,))
        wait_until(
            lambda: (b := _leader_backend(leader)) is not None and b[2] == "Lock",
            what="the leader's rescuer to wait on the locked row",
        )
        os.kill(leader.pid, signal.SIGSTOP)
        blocker.rollback()  # the statement completes, and the frozen client never goes on
    wait_until(
        lambda: (b := _leader_backend(leader)) is None or b[1] == "idle in transaction",
        what="the frozen leader's session to be idle in its transaction",
    )
    other = fault_worker("--processes", "1")
    leader_id = leader.worker_id()
    wait_until(
        lambda: sql_value("SELECT state FROM horsies_worker WHERE id = %s", leader_id) == "DEAD",
        what="another worker to take over maintenance and mark the frozen leader DEAD",
    )
    assert leads_maintenance(other)
    assert sql_value("SELECT state FROM horsies_worker WHERE id = %s", decoy) == "DEAD"
