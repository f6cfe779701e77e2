"""What a running workflow node learns about its workflow: `WorkflowContext` and `WorkflowMeta`.

Both are plain values the engine builds from a dict (`from_json`); a context holds only the results
of the nodes its node listed in `workflow_ctx_from`, so a task cannot read what it did not declare.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic_core import core_schema

from horsies_django import codec
from horsies_django.types import TaskError, TaskResult


class _Named(Protocol):
    """A node as `result_for` accepts it (TaskNode and SubWorkflowNode are such)."""

    @property
    def resolved_id(self) -> str | None: ...


type NodeRef = str | _Named


def _node_id(node: NodeRef) -> str:
    if isinstance(node, str):
        return node
    resolved = node.resolved_id
    if resolved is None:
        raise KeyError(
            f"{node!r} has no node id in this process: pass the node id string, give the node "
            "node_id=..., or use a class-style (WorkflowDefinition) node"
        )
    return resolved


def _result(value: Any) -> TaskResult[Any, TaskError]:
    if isinstance(value, TaskResult):
        return value
    return codec.decode_result(value, None)


@dataclass(frozen=True, slots=True)
class WorkflowMeta:
    """Where a node's task runs: filled into a `workflow_meta: WorkflowMeta | None = None`
    parameter without opting in.

    `from_json` takes `{"workflow_id": str, "task_index": int, "task_name": str}`.
    """

    workflow_id: str
    task_index: int
    task_name: str

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Validated from its JSON form (the engine's envelope in a task's kwargs)."""
        return core_schema.no_info_plain_validator_function(
            lambda value: value if isinstance(value, cls) else cls.from_json(value)
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkflowMeta:
        return cls(str(data["workflow_id"]), int(data["task_index"]), str(data["task_name"]))


@dataclass(frozen=True, slots=True)
class SubWorkflowSummary:
    """How a subworkflow node's child workflow stands (`WorkflowContext.summary_for`)."""

    workflow_id: str
    status: str
    output: TaskResult[Any, TaskError] | None = None
    total_nodes: int = 0
    completed_nodes: int = 0
    failed_nodes: int = 0
    skipped_nodes: int = 0

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Validated from its JSON form (the engine's envelope in a task's kwargs)."""
        return core_schema.no_info_plain_validator_function(
            lambda value: value if isinstance(value, cls) else cls.from_json(value)
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubWorkflowSummary:
        output = data.get("output")
        return cls(
            workflow_id=str(data["workflow_id"]),
            status=str(data["status"]),
            output=None if output is None else _result(output),
            total_nodes=int(data.get("total_nodes", 0)),
            completed_nodes=int(data.get("completed_nodes", 0)),
            failed_nodes=int(data.get("failed_nodes", 0)),
            skipped_nodes=int(data.get("skipped_nodes", 0)),
        )


@dataclass(frozen=True, slots=True)
class WorkflowContext:
    """A node's view of its workflow, filled into `workflow_ctx: WorkflowContext | None = None`.

    `from_json` takes::

        {"workflow_id": str, "task_index": int, "task_name": str,
         "results": {node_id: TaskResult | stored result ({"ok": ...} or {"err": {...}})},
         "summaries": {node_id: {"workflow_id", "status", "output"?, "total_nodes"?,
                                 "completed_nodes"?, "failed_nodes"?, "skipped_nodes"?}}}

    where `results` holds the nodes of `workflow_ctx_from` that have finished, and `summaries`
    the subworkflow nodes among them.
    """

    workflow_id: str
    task_index: int
    task_name: str
    results: Mapping[str, TaskResult[Any, TaskError]] = field(default_factory=dict)
    summaries: Mapping[str, SubWorkflowSummary] = field(default_factory=dict)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Validated from its JSON form (the engine's envelope in a task's kwargs)."""
        return core_schema.no_info_plain_validator_function(
            lambda value: value if isinstance(value, cls) else cls.from_json(value)
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkflowContext:
        return cls(
            workflow_id=str(data["workflow_id"]),
            task_index=int(data["task_index"]),
            task_name=str(data["task_name"]),
            results={str(k): _result(v) for k, v in (data.get("results") or {}).items()},
            summaries={
                str(k): SubWorkflowSummary.from_json(v)
                for k, v in (data.get("summaries") or {}).items()
            },
        )

    def result_for(self, node: NodeRef) -> TaskResult[Any, TaskError]:
        """The result of `node` (a node id, or a node); KeyError unless it is in
        `workflow_ctx_from` and has finished."""
        node_id = _node_id(node)
        if node_id not in self.results:
            raise KeyError(
                f"no result for node {node_id!r} in the context of {self.task_name!r}: list it "
                "in workflow_ctx_from=[...] (and check has_result() for any/quorum joins)"
            )
        return self.results[node_id]

    def has_result(self, node: NodeRef) -> bool:
        """True when `result_for(node)` would return a result."""
        try:
            return _node_id(node) in self.results
        except KeyError:
            return False

    def summary_for(self, node: NodeRef) -> SubWorkflowSummary:
        """The child workflow's summary of a subworkflow node listed in `workflow_ctx_from`."""
        node_id = _node_id(node)
        if node_id not in self.summaries:
            raise KeyError(
                f"no subworkflow summary for node {node_id!r}: it must be a SubWorkflowNode "
                "listed in workflow_ctx_from=[...]"
            )
        return self.summaries[node_id]
