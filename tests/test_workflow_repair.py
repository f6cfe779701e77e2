"""The maintenance leader's repair of half-advanced workflows (`horsies_wf_repair()`).

Advancing is transactional, so these states need a bug or a hand edit: each test makes one by
hand (the advancing trigger switched off, a row edited) and checks the repair finishes the job,
and that a second repair changes nothing.
"""

from __future__ import annotations

import psycopg
import pytest

from horsies_django import TaskResult, WorkflowHandle, app, from_node
from horsies_django.conf import horsies_settings
from horsies_django.maintenance import rescuer
from horsies_django.testing import run_pending
from tests.conftest import database_url, sql_rows, sql_value
from tests.testapp.workflow_tasks import fetch, total

pytestmark = pytest.mark.usefixtures("clean_tables")


def chain() -> WorkflowHandle:
    f = fetch.node(node_id="fetch")(order_id=2)
    t = total.node(node_id="total")(amount=from_node(f), extra=1)
    handle: WorkflowHandle = app.workflow("repairable", tasks=[f, t], output=t).start().ok_value
    return handle


def repair() -> int:
    return int(sql_value("SELECT horsies_wf_repair()"))


def statuses(handle: WorkflowHandle) -> dict[str, str]:
    return {t.node_id: t.status for t in handle.tasks().ok_value}


def test_a_node_whose_task_ended_without_advancing_is_marked_and_advanced() -> None:
    handle = chain()
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute("ALTER TABLE horsies_task DISABLE TRIGGER horsies_task_wf_advance")
        try:
            run_pending()
        finally:
            conn.execute("ALTER TABLE horsies_task ENABLE TRIGGER horsies_task_wf_advance")
    assert statuses(handle) == {"fetch": "ENQUEUED", "total": "PENDING"}
    assert repair() == 1
    assert statuses(handle) == {"fetch": "COMPLETED", "total": "ENQUEUED"}
    assert repair() == 0
    run_pending()
    assert handle.get(timeout_ms=5_000) == TaskResult(ok=21)


def test_ready_nodes_never_enqueued_are_enqueued() -> None:
    handle = chain()
    sql_rows(
        "WITH gone AS (DELETE FROM horsies_task RETURNING id) "
        "UPDATE horsies_workflow_node SET status = 'READY', task_id = NULL "
        "WHERE task_id IN (SELECT id FROM gone) RETURNING 1"
    )
    assert statuses(handle)["fetch"] == "READY"
    assert repair() == 1
    assert statuses(handle)["fetch"] == "ENQUEUED"
    run_pending()
    assert handle.get(timeout_ms=5_000) == TaskResult(ok=21)


def test_a_workflow_whose_nodes_all_ended_is_ended() -> None:
    handle = chain()
    run_pending()
    sql_rows(
        "UPDATE horsies_workflow SET status = 'RUNNING', nodes_done = 1, result = NULL, "
        "finished_at = NULL RETURNING 1"
    )
    assert repair() == 1
    assert handle.status().ok_value == "COMPLETED"
    assert handle.get(timeout_ms=5_000) == TaskResult(ok=21)
    assert repair() == 0


def test_the_rescuer_repairs_workflows() -> None:
    handle = chain()
    sql_rows(
        "WITH gone AS (DELETE FROM horsies_task RETURNING id) "
        "UPDATE horsies_workflow_node SET status = 'READY', task_id = NULL "
        "WHERE task_id IN (SELECT id FROM gone) RETURNING 1"
    )
    with psycopg.connect(database_url(), autocommit=True) as conn:
        counts = rescuer.run_once(conn, horsies_settings())
    assert counts.workflows_repaired == 1
    assert statuses(handle)["fetch"] == "ENQUEUED"
