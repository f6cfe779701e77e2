"""The worker: waking, claiming scheduled work on time, recording outcomes, its registry row,
graceful SIGTERM, and two workers draining one queue exactly once.

Real `horsies_worker` processes on the real database; waits poll a condition with a deadline.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction

from horsies_django import ContractCode, OperationalErrorCode, TaskHandle, TaskStatus
from tests.conftest import WorkerProcess, database_url, sql_rows, sql_value, wait_until
from tests.gates import Gate, update_gate
from tests.testapp.tasks import (
    Order,
    Point,
    add,
    boom,
    domain_error,
    gate,
    move,
    not_a_result,
    record,
    total_order,
)
from tests.testapp.worker_tasks import whoami
from tests.worker_helpers import StartWorker, child_processes, configured_workers

pytestmark = pytest.mark.usefixtures("clean_tables")

LONG_POLL = {"POLL_INTERVAL_MS": 60_000}  # far beyond every bound asserted below


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[StartWorker]:
    yield from configured_workers(tmp_path)


def task_row(task_id: str, *columns: str) -> tuple[Any, ...]:
    rows = sql_rows(f"SELECT {', '.join(columns)} FROM horsies_task WHERE id = %s", task_id)
    assert len(rows) == 1
    return rows[0]


# --------------------------------------------------------------------------- waking


def test_new_task_wakes_an_idle_worker_through_notify(configured: StartWorker) -> None:
    """With polling 60 s away, only the NOTIFY of the insert can wake the worker in time."""
    configured(LONG_POLL, "--processes", "1")
    warm = add.send(a=1, b=1).ok_value
    assert warm.get(timeout_ms=30_000).ok_value == 2  # the only child is ready and idle now

    handle = add.send(a=2, b=3).ok_value
    assert handle.get(timeout_ms=30_000).ok_value == 5
    sent_at, claimed_at = task_row(handle.task_id, "sent_at", "claimed_at")
    assert claimed_at - sent_at < timedelta(seconds=30)


CLAIM_GATE_KEY = 7_313_001


@pytest.fixture
def claim_gate() -> Iterator[Gate]:
    """While closed, every UPDATE of horsies_task (a claim among them) stays unanswered after
    it has picked its rows."""
    with update_gate("horsies_task", CLAIM_GATE_KEY) as gate:
        yield gate


def test_a_task_announced_while_a_claim_is_in_flight_is_claimed_without_the_poll(
    configured: StartWorker, claim_gate: Gate
) -> None:
    """The claim in flight picked its rows before the task was committed, so it comes back
    empty; the notification that arrived meanwhile must still bring a claim (polling is 60 s
    away). A reply must not erase a notification it could not have seen."""
    worker = configured(LONG_POLL, "--processes", "1")
    claim_gate.close()
    # The worker claims (finding nothing yet) and its claim waits at the gate.
    claim_gate.conn.execute("NOTIFY horsies_task_new, 'default 0'")
    wait_until(
        lambda: (
            sql_value(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND objid = %s",
                CLAIM_GATE_KEY,
            )
            == 1
        ),
        what="the worker's claim to wait at the gate",
    )
    with psycopg.connect(database_url(), autocommit=True) as spy:
        spy.execute("LISTEN horsies_task_new")
        handle = add.send(a=2, b=3).ok_value  # committed: its notification is on its way
        wait_until(
            lambda: any(n.channel == "horsies_task_new" for n in spy.notifies(timeout=0.5)),
            what="the task's notification to be delivered to listeners",
        )
    claim_gate.open()
    result = handle.get(timeout_ms=30_000)
    assert result.is_ok(), f"{result.err}\n{worker.log()}"
    assert result.ok_value == 5
    sent_at, claimed_at = task_row(handle.task_id, "sent_at", "claimed_at")
    assert claimed_at - sent_at < timedelta(seconds=30)


def test_polling_finds_a_task_whose_notification_was_lost(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """An insert with its NOTIFY trigger disabled is still claimed by the poll (1 s)."""
    start_worker("--processes", "1")
    with psycopg.connect(database_url(), autocommit=True) as spy:
        spy.execute("LISTEN horsies_task_new")
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("SET LOCAL session_replication_role = replica")  # no triggers
            handle = add.send(a=20, b=22).ok_value
        assert handle.get(timeout_ms=30_000).ok_value == 42
        missed = [n for n in spy.notifies(timeout=0.1) if n.channel == "horsies_task_new"]
    assert missed == []
    assert task_row(handle.task_id, "status") == ("COMPLETED",)


def test_scheduled_tasks_run_when_due_not_before_and_not_at_the_poll(
    configured: StartWorker,
) -> None:
    """The later task is sent first: the worker must re-plan its wake for the earlier one."""
    configured(LONG_POLL, "--processes", "2")
    later = add.schedule(3.0, a=3, b=0).ok_value
    sooner = add.schedule(1.5, a=1, b=0).ok_value
    assert task_row(sooner.task_id, "status") == ("PENDING",)
    assert sooner.get(timeout_ms=30_000).ok_value == 1
    assert later.get(timeout_ms=30_000).ok_value == 3
    for handle, delay in ((sooner, 1.5), (later, 3.0)):
        sent, enqueued, claimed, started, finished = task_row(
            handle.task_id, "sent_at", "enqueued_at", "claimed_at", "started_at", "finished_at"
        )
        due = sent + timedelta(seconds=delay)
        assert enqueued == due
        assert claimed >= due
        assert started >= due
        # woken by its own due time, long before the next poll (60 s away)
        assert finished - due < timedelta(seconds=30)


def test_a_task_delayed_by_a_sql_sender_wakes_an_idle_worker_when_due(
    configured: StartWorker,
) -> None:
    """The insert's notification carries the due time: a worker polling 60 s apart claims the
    task sent by horsies_send() with `delay_ms` at that time, not at its poll."""
    configured(LONG_POLL, "--processes", "1")
    warm = add.send(a=1, b=1).ok_value
    assert warm.get(timeout_ms=30_000).ok_value == 2  # the worker is idle, listening
    with psycopg.connect(database_url(), autocommit=True) as sql:
        row = sql.execute(
            "SELECT horsies_send('tests.add', '{\"a\": 4, \"b\": 5}', '{\"delay_ms\": 1500}')"
        ).fetchone()
    assert row is not None
    handle = TaskHandle.from_id(str(row[0]))
    assert handle.get(timeout_ms=30_000).ok_value == 9
    sent, enqueued, claimed, finished = task_row(
        handle.task_id, "sent_at", "enqueued_at", "claimed_at", "finished_at"
    )
    assert enqueued == sent + timedelta(milliseconds=1500)
    assert claimed >= enqueued
    assert finished - enqueued < timedelta(seconds=30)  # its due time woke the worker


# --------------------------------------------------------------------------- outcomes


def attempts_of(task_id: str) -> list[dict[str, Any]]:
    columns = (
        "attempt, outcome, will_retry, error_code, error_message, traceback, worker_id::text, "
        "pid, started_at, finished_at"
    )
    rows = sql_rows(
        f"SELECT {columns} FROM horsies_task_attempt WHERE task_id = %s ORDER BY attempt", task_id
    )
    names = [c.strip().removesuffix("::text") for c in columns.split(",")]
    return [dict(zip(names, row, strict=True)) for row in rows]


def test_ok_result_completes_with_a_full_attempt_row(configured: StartWorker) -> None:
    worker = configured({}, "--processes", "2")
    handle = whoami.send().ok_value
    child_pid = handle.get(timeout_ms=30_000).ok_value
    status, error_code, started, finished, claimed_by = task_row(
        handle.task_id, "status", "error_code", "started_at", "finished_at", "claimed_by::text"
    )
    assert (status, error_code, claimed_by) == ("COMPLETED", None, worker.worker_id())
    [attempt] = attempts_of(handle.task_id)
    assert attempt["attempt"] == 1
    assert attempt["outcome"] == "COMPLETED"
    assert attempt["will_retry"] is False
    assert attempt["error_code"] is attempt["error_message"] is attempt["traceback"] is None
    assert attempt["worker_id"] == worker.worker_id()
    assert attempt["pid"] == child_pid != worker.pid
    assert child_pid in {c.pid for c in child_processes(worker)}
    assert started <= attempt["started_at"] <= attempt["finished_at"] == finished


@pytest.mark.parametrize(
    ("send", "code", "message_part", "has_traceback"),
    [
        (lambda: domain_error.send(reason="no stock"), "OUT_OF_STOCK", "no stock", False),
        (boom.send, OperationalErrorCode.UNHANDLED_EXCEPTION, "ValueError: kaboom", True),
        (not_a_result.send, ContractCode.RETURN_TYPE_MISMATCH, "returned str", False),
    ],
    ids=["task-error", "exception", "not-a-task-result"],
)
def test_failures_are_recorded_with_their_code(
    start_worker: Callable[..., WorkerProcess],
    send: Callable[[], Any],
    code: str,
    message_part: str,
    has_traceback: bool,
) -> None:
    worker = start_worker("--processes", "1")
    handle = send().ok_value
    error = handle.get(timeout_ms=30_000).err_value
    assert error.error_code == code
    assert message_part in error.message
    status, error_code, reason = task_row(handle.task_id, "status", "error_code", "failed_reason")
    assert (status, error_code) == (TaskStatus.FAILED, code)
    assert message_part in reason
    [attempt] = attempts_of(handle.task_id)
    assert (attempt["attempt"], attempt["outcome"], attempt["will_retry"]) == (1, "FAILED", False)
    assert attempt["error_code"] == code
    assert message_part in attempt["error_message"]
    assert attempt["worker_id"] == worker.worker_id()
    assert attempt["pid"] not in (None, worker.pid)
    if has_traceback:
        assert "Traceback (most recent call last)" in attempt["traceback"]
        assert 'raise ValueError("kaboom")' in attempt["traceback"]
    else:
        assert attempt["traceback"] is None


def test_pydantic_and_dataclass_arguments_and_results_are_rehydrated(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """The tasks assert the types of their arguments; the results come back typed."""
    start_worker("--processes", "2")
    order = total_order.send(order=Order(order_id=7, items=["a"])).ok_value
    moved = move.send(point=Point(1, 2), dx=10).ok_value
    assert order.get(timeout_ms=30_000).ok_value == Order(order_id=7, items=["a", "checked"])
    assert moved.get(timeout_ms=30_000).ok_value == Point(11, 2)
    assert isinstance(order.get().ok_value, Order)
    assert isinstance(moved.get().ok_value, Point)


# --------------------------------------------------------------------------- registry row


def worker_row(worker_id: str | None) -> dict[str, Any]:
    columns = [
        "hostname",
        "pid",
        "processes",
        "queues",
        "state",
        "started_at",
        "heartbeat_at",
        "stopped_at",
    ]
    [row] = sql_rows(f"SELECT {', '.join(columns)} FROM horsies_worker WHERE id = %s", worker_id)
    return dict(zip(columns, row, strict=True))


def test_worker_row_heartbeats_and_is_stopped_by_sigterm(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker("--processes", "2")
    worker_id = worker.worker_id()
    first = worker_row(worker_id)
    assert first["hostname"] == socket.gethostname()
    assert (first["pid"], first["processes"], first["queues"]) == (worker.pid, 2, ["default"])
    assert (first["state"], first["stopped_at"]) == ("RUNNING", None)
    assert first["started_at"] <= first["heartbeat_at"]
    beats: set[datetime] = {first["heartbeat_at"]}

    def two_more_beats() -> bool:
        beats.add(worker_row(worker_id)["heartbeat_at"])
        return len(beats) >= 3

    wait_until(two_more_beats, timeout_s=30, what="heartbeat_at to advance twice")
    assert worker.stop() == 0
    last = worker_row(worker_id)
    assert last["state"] == "STOPPED"
    assert last["stopped_at"] is not None
    assert last["stopped_at"] >= max(beats)
    assert last["started_at"] == first["started_at"]


def test_sigterm_lets_running_tasks_finish_and_claims_nothing_new(
    start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    worker = start_worker("--processes", "3")
    marker, release = tmp_path / "started", tmp_path / "release"
    running = [gate.send(release=str(release), marker=str(marker)).ok_value for _ in range(2)]
    wait_until(  # their code started in children (RUNNING rows may still be held, not started)
        lambda: marker.exists() and len(marker.read_text().split()) == 2,
        what="both tasks started",
    )
    worker.signal(signal.SIGTERM)
    wait_until(lambda: worker_row(worker.worker_id())["state"] == "STOPPING", what="state STOPPING")
    late = add.send(a=1, b=1).ok_value  # an idle child exists, but a stopping worker won't claim
    release.touch()
    assert worker.proc.wait(timeout=60) == 0
    for handle in running:
        assert handle.get(timeout_ms=1_000).ok_value == "released"
        assert [a["outcome"] for a in attempts_of(handle.task_id)] == ["COMPLETED"]
    assert task_row(late.task_id, "status", "claimed_by") == ("PENDING", None)
    assert attempts_of(late.task_id) == []
    assert worker_row(worker.worker_id())["state"] == "STOPPED"
    assert "(SIGTERM received): no new claims; waiting for 2 running task(s)" in worker.log()


# --------------------------------------------------------------------------- two workers


def test_two_workers_drain_2000_tasks_each_exactly_once(
    start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    total = 2_000
    ledger = tmp_path / "ledger.txt"
    workers = [start_worker("--processes", "2") for _ in range(2)]
    sent = record.send_many([{"path": str(ledger), "token": f"t{i}"} for i in range(total)])
    assert all(r.is_ok() for r in sent)
    wait_until(
        lambda: sql_value("SELECT count(*) FROM horsies_task WHERE status = 'COMPLETED'") == total,
        timeout_s=240,
        what=f"{total} tasks COMPLETED",
    )
    assert sql_rows("SELECT status, count(*) FROM horsies_task GROUP BY status") == [
        ("COMPLETED", total)
    ]
    assert sql_rows(
        "SELECT count(*), count(DISTINCT task_id), min(attempt), max(attempt) "
        "FROM horsies_task_attempt WHERE outcome = 'COMPLETED' AND NOT will_retry"
    ) == [(total, total, 1, 1)]
    assert sql_value("SELECT count(*) FROM horsies_task_attempt") == total
    assert (
        sql_rows("SELECT task_id FROM horsies_task_attempt GROUP BY task_id HAVING count(*) > 1")
        == []
    )
    assert (
        sql_value(
            "SELECT count(*) FROM horsies_task t "
            "LEFT JOIN horsies_task_attempt a ON a.task_id = t.id WHERE a.id IS NULL"
        )
        == 0
    )
    per_worker = dict(
        sql_rows("SELECT claimed_by::text, count(*) FROM horsies_task GROUP BY claimed_by")
    )
    assert set(per_worker) == {w.worker_id() for w in workers}
    tokens = ledger.read_text().split()
    assert len(tokens) == total
    assert set(tokens) == {f"t{i}" for i in range(total)}
