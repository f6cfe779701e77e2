"""Starting a workflow: one transaction (the caller's, when it has one) that writes the
workflow row, its subworkflows' rows, every node, and enqueues the roots.

`start()` returns `Ok(WorkflowHandle)` or `Err(WorkflowStartError)` like `send()` and never
raises for expected failures. Starting again with an existing `workflow_id` returns the
existing workflow's handle and writes nothing.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, transaction
from uuid_utils import uuid7

from horsies_django.conf import horsies_settings
from horsies_django.db import workflow_queries
from horsies_django.registered import table
from horsies_django.types import Err, Ok, Result
from horsies_django.workflows.handle import WorkflowHandle

if TYPE_CHECKING:
    from horsies_django.workflows.spec import NodeSpec, WorkflowSpec


@dataclass(frozen=True, slots=True)
class WorkflowStartError:
    """Why a workflow did not start; only `ENQUEUE_FAILED` is retryable (`retry_start`)."""

    code: str
    message: str
    retryable: bool
    workflow_name: str
    workflow_id: str | None


type WorkflowStartResult = Result[WorkflowHandle, WorkflowStartError]


def start(spec: WorkflowSpec, workflow_id: str | None = None) -> WorkflowStartResult:
    """Write the workflow and enqueue its roots, in the caller's transaction if it has one."""
    alias = horsies_settings().DATABASE_ALIAS
    try:
        root_id = str(uuid.UUID(str(workflow_id))) if workflow_id else str(uuid7())
    except ValueError:
        message = f"workflow_id={workflow_id!r:.100} is not a UUID: pass a UUID, or None"
        return Err(WorkflowStartError("VALIDATION_FAILED", message, False, spec.name, None))
    try:
        workflows, nodes = _rows(spec, root_id)
    except (LookupError, ValueError) as exc:
        return Err(WorkflowStartError("VALIDATION_FAILED", str(exc), False, spec.name, root_id))
    try:
        with transaction.atomic(using=alias):
            workflow_queries.insert_workflows(alias, workflows, nodes)
    except DatabaseError as exc:
        message = f"could not start workflow {spec.name}: {type(exc).__name__}: {exc}"
        return Err(WorkflowStartError("ENQUEUE_FAILED", message, True, spec.name, root_id))
    return Ok(WorkflowHandle(root_id))


async def start_async(spec: WorkflowSpec, workflow_id: str | None = None) -> WorkflowStartResult:
    return await sync_to_async(start, thread_sensitive=True)(spec, workflow_id)


def retry_start(spec: WorkflowSpec, error: WorkflowStartError) -> WorkflowStartResult:
    """Start again after `ENQUEUE_FAILED`, with the same workflow id (so at most once)."""
    if error.code != "ENQUEUE_FAILED" or error.workflow_id is None:
        return Err(
            WorkflowStartError(
                error.code,
                f"only ENQUEUE_FAILED can be retried, not {error.code}: {error.message}",
                False,
                spec.name,
                error.workflow_id,
            )
        )
    return start(spec, error.workflow_id)


def _rows(spec: WorkflowSpec, root_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The workflow rows (root first, then subworkflows, depth first) and every node row."""
    workflows: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []

    def add(
        current: WorkflowSpec, wid: str, parent: str | None, parent_index: int | None, depth: int
    ) -> None:
        policy = None
        if current.success_policy is not None:
            cases = [list(case) for case in current.success_policy]
            policy = {"cases": cases, "optional": list(current.optional_indices)}
        workflows.append(
            {
                "id": wid,
                "name": current.name,
                "definition_key": current.definition_key,
                "on_error": str(current.on_error.value),
                "output_index": current.output_index,
                "success_policy": policy,
                "parent_workflow_id": parent,
                "parent_node_index": parent_index,
                "root_workflow_id": root_id,
                "depth": depth,
                "node_count": len(current.nodes),
            }
        )
        dependants: dict[int, list[int]] = {n.index: [] for n in current.nodes}
        for node in current.nodes:
            for upstream in node.waits_for:
                dependants[upstream].append(node.index)
        for node in current.nodes:
            child_id = None
            if node.kind == "subworkflow":
                child_id = str(uuid7())
                add(_child_spec(node), child_id, wid, node.index, depth + 1)
            nodes.append(_node_row(node, wid, dependants[node.index], child_id))

    add(spec, root_id, None, None, 0)
    return workflows, nodes


def _child_spec(node: NodeSpec) -> WorkflowSpec:
    from horsies_django.workflows.definition import definition_for

    definition = definition_for(node.sub_definition_key or "")
    if definition is None:
        raise LookupError(
            f"SUBWORKFLOW_LOAD_FAILED: node {node.node_id}: no workflow definition "
            f"{node.sub_definition_key!r} is loaded in this process"
        )
    params = json.loads(node.sub_kwargs_json) if node.sub_kwargs_json else {}
    return definition.build_with(**params) if params else definition.build()


def _node_row(
    node: NodeSpec, workflow_id: str, dependants: list[int], sub_workflow_id: str | None
) -> dict[str, Any]:
    definition = table.get(node.task_name) if node.task_name else None
    if node.kind == "task" and definition is None:
        raise LookupError(f"node {node.node_id}: task {node.task_name} is not registered")
    return {
        "workflow_id": workflow_id,
        "index": node.index,
        "node_id": node.node_id,
        "kind": node.kind,
        "task_name": node.task_name,
        "queue_name": node.queue_name,
        "priority": node.priority if node.priority is not None else 50,
        "kwargs": json.loads(node.kwargs_json or "{}"),
        "waits_for": list(node.waits_for),
        "dependants": dependants,
        "args_from": dict(node.args_from),
        "workflow_ctx_from": list(node.workflow_ctx_from),
        "join_kind": node.join,
        "min_success": node.min_success,
        "allow_failed_deps": node.allow_failed_deps,
        "good_until": None if node.good_until is None else node.good_until.isoformat(),
        "wants_ctx": node.wants_ctx,
        "wants_meta": node.wants_meta,
        "max_retries": definition.max_retries if definition else 0,
        "timeout_ms": definition.timeout_ms if definition else None,
        "options": json.loads(definition.options_json) if definition else {},
        "sub_definition_key": node.sub_definition_key,
        "sub_workflow_id": sub_workflow_id,
    }


__all__ = ["WorkflowStartError", "WorkflowStartResult", "retry_start", "start", "start_async"]
