"""Workflows that end before their nodes do: cancelled from either end of a tree, expired after
a long pause, and never deadlocked against a node finishing at the same moment.

The race is played by doing it: a test-only gate (an advisory lock the finishing session waits
on, once it holds its first lock) holds a node's outcome mid-advance while the parent is
cancelled from another connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.db import connections

from horsies_django import SubWorkflowNode, WorkflowDefinition, WorkflowHandle
from horsies_django.db import maintenance_queries
from horsies_django.testing import run_pending
from horsies_django.types import BrokerResult
from tests.conftest import database_url, sql_rows, sql_value, wait_until
from tests.gates import Gate, update_gate
from tests.testapp.tasks import add
from tests.testapp.workflow_tasks import fetch
from tests.worker_helpers import StartWorker, configured_workers

pytestmark = pytest.mark.usefixtures("clean_tables")


class Leaf(WorkflowDefinition[int]):
    definition_key = "tests.wf.stopping.leaf"
    one = fetch.node()(order_id=1)

    class Meta:
        output = "one"


class Middle(WorkflowDefinition[int]):
    definition_key = "tests.wf.stopping.middle"
    leaf = SubWorkflowNode(Leaf)

    class Meta:
        output = "leaf"


class Top(WorkflowDefinition[int]):
    definition_key = "tests.wf.stopping.top"
    middle = SubWorkflowNode(Middle)
    after = add.node(waits_for=[middle])(a=1, b=2)

    class Meta:
        output = "after"


def statuses_by_depth() -> list[tuple[int, str]]:
    return sql_rows("SELECT depth, status FROM horsies_workflow ORDER BY depth")


def leaf_task_id() -> str:
    return str(
        sql_value(
            "SELECT n.task_id FROM horsies_workflow_node n "
            "JOIN horsies_workflow w ON w.id = n.workflow_id WHERE w.depth = 2"
        )
    )


GATE_KEY = 7_313_002


@pytest.fixture
def advance_gate() -> Iterator[Gate]:
    """While closed, sessions with `horsies_test.gate = on` wait at their first node update."""
    with update_gate("horsies_workflow_node", GATE_KEY, marked_sessions_only=True) as gate:
        yield gate


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `work` in a thread; its return value or exception lands in the list."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:  # the assertion below shows it
            outcome.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def waiting_backends(query_like: str) -> int:
    return int(
        sql_value(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE %s",
            query_like,
        )
    )


def test_cancelling_a_parent_while_a_child_finishes_does_not_deadlock(
    advance_gate: Gate,
) -> None:
    """The child's last node finishing locks child then parent; cancelling the parent locks
    parent then child. Both lock the tree's root first, so one waits for the other."""
    handle = Top.build().start().ok_value
    task_id = leaf_task_id()
    sql_rows("UPDATE horsies_task SET status = 'RUNNING' WHERE id = %s RETURNING 1", task_id)
    advance_gate.close()

    def finish_leaf() -> int:
        with psycopg.connect(database_url(), autocommit=True) as conn:
            conn.execute("SET horsies_test.gate = 'on'")
            cur = conn.execute(
                "UPDATE horsies_task SET status = 'COMPLETED', result = '{\"ok\": 10}', "
                "finished_at = now() WHERE id = %s",
                (task_id,),
            )
            return cur.rowcount

    finishing, finished = in_thread(finish_leaf)
    wait_until(lambda: waiting_backends("UPDATE horsies_task%") == 1, what="finish at the gate")
    cancelling, cancelled = in_thread(handle.cancel)
    wait_until(lambda: waiting_backends("%horsies_wf_cancel%") == 1, what="cancel waiting")
    advance_gate.open()
    finishing.join()
    cancelling.join()

    assert finished == [1]
    outcome: BrokerResult[bool] = cancelled[0]
    assert outcome.is_ok(), outcome
    assert outcome.ok_value is True
    # The child tree finished first (it held the root), then the cancel ended the top.
    assert statuses_by_depth() == [(0, "CANCELLED"), (1, "COMPLETED"), (2, "COMPLETED")]
    assert sql_rows("SELECT status FROM horsies_workflow_node WHERE node_id = 'after'") == [
        ("SKIPPED",)
    ]


def test_a_child_cancelled_on_its_own_fails_its_parents_node() -> None:
    handle = Top.build().start().ok_value
    middle = WorkflowHandle.from_id(
        str(sql_value("SELECT id FROM horsies_workflow WHERE depth = 1"))
    )
    assert middle.cancel().ok_value is True
    assert statuses_by_depth() == [(0, "FAILED"), (1, "CANCELLED"), (2, "CANCELLED")]
    node = sql_rows("SELECT status, error_code FROM horsies_workflow_node WHERE node_id = 'middle'")
    assert node == [("FAILED", "SUBWORKFLOW_FAILED")]
    error = handle.get(timeout_ms=5_000).unwrap_err()  # the first failed node's error
    assert error.error_code == "SUBWORKFLOW_FAILED"
    assert "ended CANCELLED" in error.message
    assert run_pending() == []  # the leaf's task was cancelled, `after` was skipped


def test_a_workflow_paused_too_long_expires_with_its_children() -> None:
    handle = Top.build().start().ok_value
    assert handle.pause().ok_value is True
    with psycopg.connect(database_url(), autocommit=True) as conn:
        assert maintenance_queries.expire_paused_workflows(conn, 3_600.0) == 0  # not yet
        assert maintenance_queries.expire_paused_workflows(conn, 0.0) == 1  # the tree, once
    assert statuses_by_depth() == [(0, "EXPIRED"), (1, "EXPIRED"), (2, "EXPIRED")]
    result = handle.get(timeout_ms=5_000)
    assert result.unwrap_err().error_code == "WORKFLOW_EXPIRED"
    assert handle.resume().ok_value is False
    assert sql_rows("SELECT DISTINCT status FROM horsies_task") == [("CANCELLED",)]


@pytest.fixture
def configured(tmp_path: Any) -> Iterator[StartWorker]:
    yield from configured_workers(tmp_path)


def test_the_maintenance_leader_expires_paused_workflows(configured: StartWorker) -> None:
    """A worker whose setting expires a paused workflow at once ends it EXPIRED; `get()`
    wakes with WORKFLOW_EXPIRED."""
    handle = Top.build().start().ok_value
    assert handle.pause().ok_value is True
    configured({"WORKFLOW_PAUSE_EXPIRES_AFTER_MS": 0, "RESCUER_INTERVAL_MS": 100})
    wait_until(lambda: handle.status().ok_value == "EXPIRED", what="the workflow to expire")
    error = handle.get(timeout_ms=5_000).unwrap_err()
    assert error.error_code == "WORKFLOW_EXPIRED"
    assert "paused for longer than" in error.message
