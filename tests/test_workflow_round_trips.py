"""Advancing a workflow costs no round trip of its own: a node's dependants are enqueued by the
very statement that records the node's outcome, on the worker's outcome connection.

A test-only trace records, for every task row finished and every task row inserted, the backend,
the transaction and `statement_timestamp()` (the time the client's request arrived): equal
triples mean one request from the worker did both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from horsies_django import TaskResult, app, from_node
from tests.conftest import database_url, sql_rows
from tests.testapp.tasks import add
from tests.testapp.workflow_tasks import fetch, total

pytestmark = pytest.mark.usefixtures("clean_tables")

TRACE = """
CREATE TABLE test_task_trace (kind text, task_id uuid, pid int, xid bigint, request_at timestamptz);
CREATE FUNCTION test_trace_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_task_trace
    SELECT CASE WHEN TG_OP = 'INSERT' THEN 'inserted' ELSE 'finished' END, NEW.id,
           pg_backend_pid(), txid_current(), statement_timestamp();
    RETURN NULL;
END $$;
CREATE TRIGGER test_trace_insert AFTER INSERT ON horsies_task
    FOR EACH ROW EXECUTE FUNCTION test_trace_task();
CREATE TRIGGER test_trace_finish AFTER UPDATE ON horsies_task
    FOR EACH ROW WHEN (OLD.status = 'RUNNING' AND NEW.status = 'COMPLETED')
    EXECUTE FUNCTION test_trace_task();
"""
NO_TRACE = """
DROP TRIGGER IF EXISTS test_trace_insert ON horsies_task;
DROP TRIGGER IF EXISTS test_trace_finish ON horsies_task;
DROP FUNCTION IF EXISTS test_trace_task();
DROP TABLE IF EXISTS test_task_trace;
"""

type Request = tuple[int, int, Any]  # backend pid, transaction id, request time


@pytest.fixture
def task_trace() -> Iterator[None]:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(NO_TRACE)
        conn.execute(TRACE)
    try:
        yield
    finally:
        with psycopg.connect(database_url(), autocommit=True) as conn:
            conn.execute(NO_TRACE)


def traced(kind: str) -> dict[str, Request]:
    rows = sql_rows(
        "SELECT t.node_id, tr.pid, tr.xid, tr.request_at FROM test_task_trace tr "
        "JOIN horsies_workflow_node t ON t.task_id = tr.task_id WHERE tr.kind = %s",
        kind,
    )
    return {node_id: (pid, xid, at) for node_id, pid, xid, at in rows}


@pytest.mark.usefixtures("task_trace")
def test_dependants_are_enqueued_by_the_request_that_finishes_their_last_dependency(
    start_worker: Any,
) -> None:
    """A diamond (fetch -> two totals -> a sum) and a plain task, on one worker."""
    top = fetch.node(node_id="top")(order_id=1)
    left = total.node(node_id="left")(amount=from_node(top), extra=1)
    right = total.node(node_id="right")(amount=from_node(top), extra=2)
    bottom = add.node(waits_for=[left, right], node_id="bottom")(a=1, b=1)
    handle = app.workflow("diamond", tasks=[top, left, right, bottom], output=bottom)
    started = handle.start().ok_value
    plain = add.send(a=2, b=2).ok_value
    start_worker("--processes", "1")
    assert started.get(timeout_ms=30_000) == TaskResult(ok=2)
    assert plain.get(timeout_ms=30_000) == TaskResult(ok=4)

    finished, inserted = traced("finished"), traced("inserted")
    assert set(finished) == {"top", "left", "right", "bottom"}
    # Both middle nodes were enqueued by the request that recorded `top`'s outcome.
    assert inserted["left"] == inserted["right"] == finished["top"]
    # The sink by the request that recorded whichever of its two dependencies finished last.
    last = max(("left", "right"), key=lambda node: finished[node][2])
    assert inserted["bottom"] == finished[last]
    # All on the one connection the worker records every outcome on, plain tasks' included.
    plain_pid = sql_rows(
        "SELECT pid FROM test_task_trace WHERE kind = 'finished' AND task_id = %s", plain.task_id
    )
    assert {pid for pid, _, _ in finished.values()} == {plain_pid[0][0]}
