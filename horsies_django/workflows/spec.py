"""Workflow authoring values and the flattened `WorkflowSpec` that the database side starts.

Authoring objects (`TaskNode`, `SubWorkflowNode`, `SuccessPolicy`) are what users write; a
`WorkflowSpec` is built from them only after every rule of `validation` passed, is frozen, and
names nodes by index alone, so what is started is exactly what was checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from horsies_django.definitions import TaskDefinition
from horsies_django.states import OnError as OnError  # defined there: the registry needs it alone

type Join = Literal["all", "any", "quorum"]
JOINS: Final[tuple[str, ...]] = ("all", "any", "quorum")


# --------------------------------------------------------------------------- authoring


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<required>"


MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class WorkflowParam:
    """A placeholder in a class-style node's kwargs, filled by `build_with(name=value)`."""

    name: str
    default: Any = MISSING


def param(name: str, default: Any = MISSING) -> Any:
    """A build parameter of a `WorkflowDefinition`: `node()(order_id=param("order_id"))`."""
    return WorkflowParam(name, default)


@dataclass(frozen=True, slots=True)
class FromNode:
    """`from_node(upstream)` as a kwarg value: that parameter receives upstream's TaskResult."""

    node: Node


def from_node(node: Node) -> Any:
    """Shorthand for `args_from={param: node}` plus the dependency on `node`."""
    return FromNode(node)


class _NodeBase:
    """Identity-hashed; knows its class attribute name (its id in a class-style workflow)."""

    node_id: str | None
    attribute_name: str | None = None
    built_id: str | None = None  # the id given by the last spec built from it

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute_name = name

    @property
    def resolved_id(self) -> str | None:
        """Its explicit id, else its attribute name, else the id of the last spec built."""
        return self.node_id or self.attribute_name or self.built_id


@dataclass(eq=False)
class TaskNode[T](_NodeBase):
    """One task of a workflow; made by `task.node(...)(**kwargs)`."""

    task: TaskDefinition
    kwargs: dict[str, Any] = field(default_factory=dict)
    waits_for: tuple[Node, ...] = ()
    args_from: dict[str, Node] = field(default_factory=dict)
    workflow_ctx_from: tuple[Node, ...] = ()
    queue: str | None = None
    priority: int | None = None
    allow_failed_deps: bool = False
    join: str = "all"
    min_success: int | None = None
    good_until: datetime | None = None
    node_id: str | None = None

    def __repr__(self) -> str:
        return f"<TaskNode {self.resolved_id or '?'} task={self.task.name!r}>"

    def describe(self) -> str:
        return f"node {self.resolved_id!r}" if self.resolved_id else f"a {self.task.name!r} node"


@dataclass(eq=False)
class SubWorkflowNode(_NodeBase):
    """A node that runs a whole child workflow: a `WorkflowDefinition` class or its key.

    `kwargs` are the child's build parameters (`build_with`). The child is built when the
    parent starts, so `args_from` (upstream results) is refused by validation.
    """

    definition: type[Any] | str
    kwargs: dict[str, Any] = field(default_factory=dict)
    waits_for: Sequence[Node] = ()
    args_from: Mapping[str, Node] = field(default_factory=dict)
    allow_failed_deps: bool = False
    join: str = "all"
    min_success: int | None = None
    good_until: datetime | None = None
    node_id: str | None = None

    def __post_init__(self) -> None:
        kwargs, args_from, waits_for = split_from_nodes(
            dict(self.kwargs), dict(self.args_from), tuple(self.waits_for)
        )
        self.kwargs, self.args_from, self.waits_for = kwargs, args_from, waits_for

    @property
    def definition_key(self) -> str | None:
        if isinstance(self.definition, str):
            return self.definition
        key = getattr(self.definition, "definition_key", None)
        return key if isinstance(key, str) else None

    def __repr__(self) -> str:
        return f"<SubWorkflowNode {self.resolved_id or '?'} definition={self.definition_key!r}>"

    def describe(self) -> str:
        if self.resolved_id:
            return f"node {self.resolved_id!r}"
        return f"a subworkflow node of {self.definition_key!r}"


type Node = TaskNode[Any] | SubWorkflowNode
type NodeRef = Node | str


def split_from_nodes(
    kwargs: dict[str, Any], args_from: dict[str, Node], waits_for: tuple[Node, ...]
) -> tuple[dict[str, Any], dict[str, Node], tuple[Node, ...]]:
    """Move `from_node(x)` kwargs into `args_from`, adding `x` to `waits_for` once."""
    for name, value in list(kwargs.items()):
        if isinstance(value, FromNode):
            del kwargs[name]
            args_from[name] = value.node
            if not any(value.node is dep for dep in waits_for):
                waits_for = (*waits_for, value.node)
    return kwargs, args_from, waits_for


def task_node[T](
    definition: TaskDefinition,
    kwargs: dict[str, Any],
    *,
    waits_for: Sequence[Node] = (),
    args_from: Mapping[str, Node] | None = None,
    workflow_ctx_from: Sequence[Node] = (),
    queue: str | None = None,
    priority: int | None = None,
    allow_failed_deps: bool = False,
    join: str = "all",
    min_success: int | None = None,
    good_until: datetime | None = None,
    node_id: str | None = None,
) -> TaskNode[T]:
    """The node `task.node(**options)(**kwargs)` makes (rules are checked at build)."""
    plain, sources, deps = split_from_nodes(dict(kwargs), dict(args_from or {}), tuple(waits_for))
    return TaskNode(
        task=definition,
        kwargs=plain,
        waits_for=deps,
        args_from=sources,
        workflow_ctx_from=tuple(workflow_ctx_from),
        queue=queue,
        priority=priority,
        allow_failed_deps=allow_failed_deps,
        join=join,
        min_success=min_success,
        good_until=good_until,
        node_id=node_id,
    )


@dataclass(frozen=True)
class SuccessCase:
    """The workflow succeeds when every `required` node (a node or its id) is COMPLETED."""

    required: Sequence[NodeRef]


@dataclass(frozen=True)
class SuccessPolicy:
    """COMPLETED when some case is met; `optional` nodes' failures do not fail the workflow."""

    cases: Sequence[SuccessCase]
    optional: Sequence[NodeRef] = ()


# --------------------------------------------------------------------------- definitions table

# WorkflowDefinition subclasses by `definition_key` (a subworkflow's child is found here).
definition_table: dict[str, type[Any]] = {}


def definition_for(key: str) -> type[Any] | None:
    """The WorkflowDefinition class registered under `key`, if any."""
    return definition_table.get(key)


def declared_nodes(cls: type) -> Iterator[tuple[str, Node]]:
    """A definition class's nodes as (attribute name, node), bases first, in definition order."""
    seen: set[str] = set()
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, TaskNode | SubWorkflowNode) and name not in seen:
                seen.add(name)
                yield name, getattr(cls, name)


# --------------------------------------------------------------------------- flattened form


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One node of a built workflow, every reference an index into `WorkflowSpec.nodes`.

    `kind` is "task" or "subworkflow". Task nodes have `task_name`, `queue_name` (the node's
    queue, else the task's), `priority` (1..100, 50 unless given) and `kwargs_json` (the JSON a
    send would store, without the `args_from` parameters); subworkflow nodes have
    `sub_definition_key` and `sub_kwargs_json` (the child's build parameters) instead, and None
    in the task fields. `args_from` pairs a parameter with the index whose TaskResult it
    receives; `wants_ctx` / `wants_meta`: the task declares `workflow_ctx` / `workflow_meta`.
    """

    index: int
    node_id: str
    kind: Literal["task", "subworkflow"]
    task_name: str | None
    queue_name: str | None
    priority: int | None
    kwargs_json: str | None
    waits_for: tuple[int, ...]
    args_from: tuple[tuple[str, int], ...]
    workflow_ctx_from: tuple[int, ...]
    join: Join
    min_success: int | None
    allow_failed_deps: bool
    good_until: datetime | None
    wants_ctx: bool
    wants_meta: bool
    sub_definition_key: str | None
    sub_kwargs_json: str | None


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    """A validated workflow, ready to start; frozen, so a started spec is the checked one.

    `nodes` are in index order (the order of `tasks=[...]`, or of the class attributes).
    `output_index` is the node whose result `get()` returns (None: the sinks' results).
    `success_policy` holds each case's required indices; `optional_indices` the optional ones.
    """

    name: str
    definition_key: str | None
    nodes: tuple[NodeSpec, ...]
    output_index: int | None
    on_error: OnError
    success_policy: tuple[tuple[int, ...], ...] | None
    optional_indices: tuple[int, ...]

    def index_of(self, node_id: str) -> int:
        """The index of the node with this id (KeyError if none)."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node.index
        raise KeyError(f"workflow {self.name!r} has no node {node_id!r}")

    def start(self, workflow_id: str | None = None) -> Any:
        """Start it (one transaction, joining the caller's): `workflows.starting.start`."""
        return _starting().start(self, workflow_id)

    async def start_async(self, workflow_id: str | None = None) -> Any:
        """`start()` for async code."""
        return await _starting().start_async(self, workflow_id)

    def retry_start(self, err: Any) -> Any:
        """Start again after a retryable WORKFLOW_ENQUEUE_FAILED error."""
        return _starting().retry_start(self, err)


# `workflows.starting` (above this module: it imports the database side) installs itself here
# when the `workflows` package is imported, as `eager` does into `sending`, so that it may
# import this module without a cycle.
_starter: Any = None


def install_starter(module: Any) -> None:
    """Install the module whose `start`, `start_async`, `retry_start` start a spec."""
    global _starter
    _starter = module


def _starting() -> Any:
    if _starter is None:
        raise NotImplementedError("workflow start: not built yet")
    return _starter
