"""The statements of workflows: start (rows, then the engine's `horsies_wf_begin`), the
handle's reads, and cancel / pause / resume (the engine's functions, migration 0008).

They run on the caller's Django connection, so a start joins the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from django.db import connections

# Workflow rows (a root and its subworkflows), given as one JSON array. A root that exists
# already (a start replayed with the same workflow_id) is not inserted: no id comes back.
INSERT_WORKFLOWS: Final = """
INSERT INTO horsies_workflow (
    id, name, definition_key, status, on_error, output_index, success_policy,
    parent_workflow_id, parent_node_index, root_workflow_id, depth, node_count, nodes_done,
    created_at)
SELECT w.id, w.name, w.definition_key, 'PENDING', w.on_error, w.output_index,
    w.success_policy, w.parent_workflow_id, w.parent_node_index, w.root_workflow_id, w.depth,
    w.node_count, 0, statement_timestamp()
FROM jsonb_to_recordset(%s::jsonb) AS w(
    id uuid, name text, definition_key text, on_error text, output_index int,
    success_policy jsonb, parent_workflow_id uuid, parent_node_index int, root_workflow_id uuid,
    depth int, node_count int)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

INSERT_NODES: Final = """
INSERT INTO horsies_workflow_node (
    workflow_id, index, node_id, kind, task_name, queue_name, priority, kwargs, waits_for,
    dependants, args_from, workflow_ctx_from, "join", min_success, allow_failed_deps,
    deps_done, deps_ok, good_until, wants_ctx, wants_meta, max_retries, timeout_ms, options,
    sub_definition_key, sub_workflow_id, status)
SELECT n.workflow_id, n.index, n.node_id, n.kind, n.task_name, n.queue_name, n.priority,
    n.kwargs, ARRAY(SELECT jsonb_array_elements_text(n.waits_for)::int),
    ARRAY(SELECT jsonb_array_elements_text(n.dependants)::int), n.args_from,
    ARRAY(SELECT jsonb_array_elements_text(n.workflow_ctx_from)::int), n.join_kind,
    n.min_success, n.allow_failed_deps, 0, 0, n.good_until, n.wants_ctx, n.wants_meta,
    n.max_retries, n.timeout_ms, n.options, n.sub_definition_key, n.sub_workflow_id, 'PENDING'
FROM jsonb_to_recordset(%s::jsonb) AS n(
    workflow_id uuid, index int, node_id text, kind text, task_name text, queue_name text,
    priority int, kwargs jsonb, waits_for jsonb, dependants jsonb, args_from jsonb,
    workflow_ctx_from jsonb, join_kind text, min_success int, allow_failed_deps boolean,
    good_until timestamptz, wants_ctx boolean, wants_meta boolean, max_retries int,
    timeout_ms int, options jsonb, sub_definition_key text, sub_workflow_id uuid)
"""

BEGIN: Final = "SELECT horsies_wf_begin(%s)"

SELECT_WORKFLOW: Final = """
SELECT w.id, w.name, w.status, w.result::text, w.error_code, w.failed_reason, w.node_count,
    w.nodes_done, w.created_at, w.started_at, w.finished_at, w.parent_workflow_id,
    w.output_index, o.task_name
FROM horsies_workflow w
LEFT JOIN horsies_workflow_node o ON o.workflow_id = w.id AND o.index = w.output_index
WHERE w.id = %s
"""

# Nodes with the status their task shows (an ENQUEUED node whose task runs is RUNNING).
SELECT_NODES: Final = """
SELECT n.node_id, n.index, n.task_name, n.kind,
    CASE WHEN n.status = 'ENQUEUED' AND (n.kind = 'subworkflow' OR t.status = 'RUNNING')
         THEN 'RUNNING' ELSE n.status END,
    n.result::text, n.started_at, n.completed_at, n.sub_workflow_id, n.task_id, n.error_code
FROM horsies_workflow_node n LEFT JOIN horsies_task t ON t.id = n.task_id
WHERE n.workflow_id = %s ORDER BY n.index
"""

CANCEL: Final = "SELECT horsies_wf_cancel(%s)"
PAUSE: Final = "SELECT horsies_wf_pause(%s)"
RESUME: Final = "SELECT horsies_wf_resume(%s)"


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    workflow_id: str
    name: str
    status: str
    result_json: str | None
    error_code: str | None
    failed_reason: str | None
    node_count: int
    nodes_done: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    parent_workflow_id: str | None
    output_index: int | None
    output_task_name: str | None


@dataclass(frozen=True, slots=True)
class NodeRow:
    node_id: str
    index: int
    task_name: str | None
    kind: str
    status: str
    result_json: str | None
    started_at: datetime | None
    completed_at: datetime | None
    sub_workflow_id: str | None
    task_id: str | None
    error_code: str | None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def insert_workflows(
    alias: str, workflows: Sequence[dict[str, Any]], nodes: Sequence[dict[str, Any]]
) -> bool:
    """Insert the rows of a start; False (and nothing inserted) when the root exists."""
    with connections[alias].cursor() as cur:
        cur.execute(INSERT_WORKFLOWS, (json.dumps(list(workflows[:1])),))
        if cur.fetchone() is None:
            return False
        if len(workflows) > 1:
            cur.execute(INSERT_WORKFLOWS, (json.dumps(list(workflows[1:])),))
        cur.execute(INSERT_NODES, (json.dumps(list(nodes)),))
        cur.execute(BEGIN, (workflows[0]["id"],))
    return True


def fetch_workflow(alias: str, workflow_id: str) -> WorkflowRow | None:
    with connections[alias].cursor() as cur:
        cur.execute(SELECT_WORKFLOW, (workflow_id,))
        row = cur.fetchone()
    if row is None:
        return None
    (wid, name, status, result, code, reason, count, done, created, started, finished) = row[:11]
    parent, output_index, output_task = row[11:]
    return WorkflowRow(
        workflow_id=str(wid),
        name=name,
        status=status,
        result_json=result,
        error_code=code,
        failed_reason=reason,
        node_count=count,
        nodes_done=done,
        created_at=created,
        started_at=started,
        finished_at=finished,
        parent_workflow_id=_text(parent),
        output_index=output_index,
        output_task_name=output_task,
    )


def fetch_nodes(alias: str, workflow_id: str) -> list[NodeRow]:
    with connections[alias].cursor() as cur:
        cur.execute(SELECT_NODES, (workflow_id,))
        rows = cur.fetchall()
    return [
        NodeRow(
            node_id=node_id,
            index=index,
            task_name=task_name,
            kind=kind,
            status=status,
            result_json=result,
            started_at=started,
            completed_at=completed,
            sub_workflow_id=_text(sub),
            task_id=_text(task_id),
            error_code=code,
        )
        for (
            node_id,
            index,
            task_name,
            kind,
            status,
            result,
            started,
            completed,
            sub,
            task_id,
            code,
        ) in rows
    ]


def _call(alias: str, statement: str, workflow_id: str) -> bool:
    with connections[alias].cursor() as cur:
        cur.execute(statement, (workflow_id,))
        row = cur.fetchone()
    return bool(row and row[0])


def cancel(alias: str, workflow_id: str) -> bool:
    """Cancel a workflow that has not ended (and its children); False if it had ended."""
    return _call(alias, CANCEL, workflow_id)


def pause(alias: str, workflow_id: str) -> bool:
    return _call(alias, PAUSE, workflow_id)


def resume(alias: str, workflow_id: str) -> bool:
    return _call(alias, RESUME, workflow_id)
