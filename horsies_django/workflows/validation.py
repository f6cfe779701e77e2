"""Every authoring rule of a workflow, checked when its spec is built.

`build_spec` runs all the rules, collects every problem (each naming the node and the fix) and
raises one `WorkflowValidationError`; only a workflow with no problem is flattened into a
`WorkflowSpec`, so no broken DAG reaches the database.

Longer than 400 lines on purpose: one rule per function, all in one place, so the rules read as
the contract's list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, cast

from horsies_django import codec
from horsies_django.conf import horsies_settings
from horsies_django.definitions import queue_problem
from horsies_django.exceptions import EncodingError, WorkflowValidationError
from horsies_django.types import (
    DEFAULT_PRIORITY,
    PRIORITY_MAX,
    PRIORITY_MIN,
    TaskError,
)
from horsies_django.workflows.context import WorkflowContext, WorkflowMeta
from horsies_django.workflows.introspect import (
    child_class,
    cycles,
    definition_cycle,
    definition_params,
    engine_param_ok,
    label,
    ok_type_of,
    result_types,
    types_match,
)
from horsies_django.workflows.spec import (
    JOINS,
    MISSING,
    Join,
    Node,
    NodeRef,
    NodeSpec,
    OnError,
    SubWorkflowNode,
    SuccessPolicy,
    TaskNode,
    WorkflowParam,
    WorkflowSpec,
)

NODE_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_\-:.]+")
MAX_NODE_ID_LENGTH: Final = 128
ENGINE_PARAMS: Final = {"workflow_ctx": WorkflowContext, "workflow_meta": WorkflowMeta}


@dataclass
class _Build:
    """One workflow being checked: its nodes, their ids and the problems found so far."""

    name: str
    nodes: list[Node]
    ids: list[str]
    params: Mapping[str, Any]
    problems: list[str] = field(default_factory=list)
    index: dict[Node, int] = field(default_factory=dict)
    used_params: set[str] = field(default_factory=set)
    encoded: dict[int, str | None] = field(default_factory=dict)  # kwargs_json by index

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def where(self, i: int) -> str:
        return f"node {self.ids[i]!r}"

    def index_of(self, node: object) -> int | None:
        if isinstance(node, TaskNode | SubWorkflowNode):
            return self.index.get(node)
        return None


def build_spec(
    name: str,
    entries: Sequence[tuple[str | None, object]],
    *,
    output: object = None,
    on_error: object = OnError.FAIL,
    success_policy: object = None,
    definition_key: str | None = None,
    out_type: Any = Any,
    params: Mapping[str, Any] | None = None,
    declared_params: Mapping[str, Any] | None = None,
) -> WorkflowSpec:
    """Check every rule and flatten (or raise `WorkflowValidationError` listing all problems).

    `entries` are (explicit id or None, node) in index order; a None id becomes the node's own
    `node_id`, else `<slug of name>:<index>`. `params` are `build_with` values for the
    `param()` placeholders in kwargs; `declared_params` the placeholders' defaults.
    """
    build = _start(name, entries, params or {})
    if not build.nodes:
        raise WorkflowValidationError(name, build.problems)
    for i in range(len(build.nodes)):
        _check_node(build, i, definition_key)
    _check_graph(build)
    output_index = _check_output(build, output, out_type)
    policy = _check_policy(build, success_policy)
    _check_params(build, declared_params or {})
    if not isinstance(on_error, OnError):
        build.add(f"on_error={on_error!r} must be OnError.FAIL or OnError.PAUSE")
    if build.problems:
        raise WorkflowValidationError(name, build.problems)
    for node, node_id in zip(build.nodes, build.ids, strict=True):
        node.built_id = node_id
    return WorkflowSpec(
        name=name,
        definition_key=definition_key,
        nodes=tuple(_flatten(build, i) for i in range(len(build.nodes))),
        output_index=output_index,
        on_error=OnError(cast(OnError, on_error)),
        success_policy=None if policy is None else policy[0],
        optional_indices=() if policy is None else policy[1],
    )


# --------------------------------------------------------------------------- ids


def slug(name: str) -> str:
    """The prefix of default node ids: `name` with characters ids refuse replaced by `-`."""
    return re.sub(r"[^A-Za-z0-9_\-.]+", "-", name).strip("-")[:100] or "workflow"


def _start(
    name: object, entries: Sequence[tuple[str | None, object]], params: Mapping[str, Any]
) -> _Build:
    build = _Build(name=str(name), nodes=[], ids=[], params=params)
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        build.add(
            f"the workflow name {name!r:.100} must be a non-empty string of at most 255 characters"
        )
    if not entries:
        build.add("the workflow is empty: give at least one node, e.g. tasks=[task.node()()]")
    for position, (explicit, node) in enumerate(entries):
        if not isinstance(node, TaskNode | SubWorkflowNode):
            build.add(
                f"entry {position} of the workflow is a {type(node).__name__}, not a node: "
                "make one with task.node(...)(...) or SubWorkflowNode(...)"
            )
            continue
        if node in build.index:
            build.add(
                f"node {build.ids[build.index[node]]!r} is listed twice (also at position "
                f"{position}); list each node once, or make a second node for a second run"
            )
            continue
        build.index[node] = len(build.nodes)
        build.nodes.append(node)
        build.ids.append(explicit or node.node_id or f"{slug(build.name)}:{position}")
    _check_ids(build)
    return build


def _check_ids(build: _Build) -> None:
    seen: dict[str, int] = {}
    for i, node_id in enumerate(build.ids):
        if len(node_id) > MAX_NODE_ID_LENGTH or not NODE_ID_PATTERN.fullmatch(node_id):
            build.add(
                f"node id {node_id!r:.150} is invalid: use at most {MAX_NODE_ID_LENGTH} of "
                "A-Z a-z 0-9 _ - : . (e.g. node_id='charge_card')"
            )
        if node_id in seen:
            build.add(
                f"node id {node_id!r} is used by the nodes at positions {seen[node_id]} and {i}: "
                "give one of them another node_id"
            )
        seen.setdefault(node_id, i)


# --------------------------------------------------------------------------- one node


def _check_node(build: _Build, i: int, definition_key: str | None) -> None:
    node = build.nodes[i]
    _check_dependencies(build, i)
    _check_join(build, i)
    if isinstance(node, TaskNode):
        _check_task_arguments(build, i, node)
        _check_result_types(build, i, node)
        _check_engine_params(build, i, node)
        _check_task_options(build, i, node)
    else:
        _check_subworkflow(build, i, node, definition_key)
    if node.good_until is not None and not _aware(node.good_until):
        build.add(
            f"{build.where(i)}: good_until={node.good_until!r} must be a timezone-aware "
            "datetime, e.g. django.utils.timezone.now() + timedelta(minutes=5)"
        )


def _aware(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _check_dependencies(build: _Build, i: int) -> None:
    node = build.nodes[i]
    deps = set()
    for dep in node.waits_for:
        j = build.index_of(dep)
        if j is None:
            build.add(f"{build.where(i)} waits for {_unknown(dep)}; {_fix_unknown(build)}")
        else:
            deps.add(j)
    sources: list[tuple[str, object]] = [
        (f"args_from[{param!r}]", src) for param, src in node.args_from.items()
    ]
    if isinstance(node, TaskNode):
        sources += [("workflow_ctx_from", src) for src in node.workflow_ctx_from]
    for what, src in sources:
        j = build.index_of(src)
        if j is None:
            build.add(f"{build.where(i)}: {what} names {_unknown(src)}; {_fix_unknown(build)}")
        elif j not in deps:
            build.add(
                f"{build.where(i)}: {what} names node {build.ids[j]!r}, which is not in its "
                f"waits_for; add it to waits_for=[...] (or pass it as from_node(...))"
            )


def _unknown(node: object) -> str:
    if isinstance(node, TaskNode | SubWorkflowNode):
        return f"{node.describe()} that is not in this workflow"
    return f"{node!r:.80}, which is not a node"


def _fix_unknown(build: _Build) -> str:
    return "add that node to the workflow's nodes, or drop the reference"


def _check_join(build: _Build, i: int) -> None:
    node = build.nodes[i]
    where = build.where(i)
    if node.join not in JOINS:
        build.add(f"{where}: join={node.join!r} is unknown; use 'all', 'any' or 'quorum'")
        return
    count = len(node.waits_for)
    if node.join != "quorum":
        if node.min_success is not None:
            build.add(
                f"{where}: min_success is only for join='quorum' (it has join={node.join!r}); "
                "drop min_success or set join='quorum'"
            )
        return
    m = node.min_success
    if m is None or isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= count:
        build.add(
            f"{where}: join='quorum' needs min_success from 1 to len(waits_for) = {count}, "
            f"got {m!r}"
        )


# --------------------------------------------------------------------------- task arguments


def _check_task_arguments(build: _Build, i: int, node: TaskNode[Any]) -> None:
    where, task = build.where(i), node.task
    kwargs = _fill_params(build, node.kwargs)
    params = task.params
    for name in kwargs:
        if name not in params:
            build.add(
                f"{where}: unknown argument {name!r}; task {task.name!r} takes "
                f"{', '.join(params) or 'no arguments'}"
            )
        elif name in ENGINE_PARAMS:
            build.add(f"{where}: {name!r} is filled by the workflow; drop it from the kwargs")
    for name in node.args_from:
        if name not in params:
            build.add(
                f"{where}: args_from names parameter {name!r}, which task {task.name!r} does "
                f"not take; use one of {', '.join(params) or 'none'}"
            )
        if name in kwargs:
            build.add(
                f"{where}: parameter {name!r} is given both in kwargs and in args_from; "
                "keep one of them"
            )
    given = set(node.kwargs) | set(node.args_from) | set(ENGINE_PARAMS)  # placeholders count
    missing = sorted(p.name for p in params.values() if p.required and p.name not in given)
    if missing:
        build.add(
            f"{where}: missing argument(s) {', '.join(missing)} of task {task.name!r}; pass them "
            "as kwargs, args_from or from_node(...), or give them defaults"
        )
    if node.join in ("any", "quorum"):
        for name in node.args_from:
            if name in params and params[name].required:
                build.add(
                    f"{where}: with join={node.join!r} a dependency may not have finished, so "
                    f"args_from parameter {name!r} needs a default (e.g. `= None`)"
                )
    build.encoded[i] = _encode(build, where, kwargs, task.declared_types)


def _fill_params(build: _Build, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The kwargs with `param()` placeholders replaced by build_with values or defaults."""
    filled = {}
    for name, value in kwargs.items():
        if isinstance(value, WorkflowParam):
            build.used_params.add(value.name)
            value = build.params.get(value.name, value.default)
            if value is MISSING:
                continue  # reported by _check_params
        filled[name] = value
    return filled


def _encode(
    build: _Build, where: str, kwargs: Mapping[str, Any], declared: Mapping[str, codec.Declared]
) -> str | None:
    """The kwargs as a send stores them, or None after reporting the codec's message."""
    limit = horsies_settings().MAX_PAYLOAD_BYTES
    try:
        return codec.encode_arguments(kwargs, limit, declared)
    except EncodingError as exc:
        build.add(f"{where}: argument {exc}")
    except Exception as exc:
        build.add(
            f"{where}: the arguments could not be encoded ({type(exc).__name__}: {exc!s:.300}); "
            "pass JSON values, pydantic models or dataclasses"
        )
    return None


# --------------------------------------------------------------------------- types


def _check_result_types(build: _Build, i: int, node: TaskNode[Any]) -> None:
    for name, src in node.args_from.items():
        param = node.task.params.get(name)
        if param is None or build.index_of(src) is None:
            continue  # reported elsewhere
        upstream = ok_type_of(src)
        types_ = result_types(param.annotation)
        wanted = f"`{name}: TaskResult[{label(upstream)}, TaskError]`"
        if types_ is None:
            build.add(
                f"{build.where(i)}: parameter {name!r} receives node "
                f"{build.ids[build.index[src]]!r}'s TaskResult but is annotated "
                f"{label(param.annotation)}; declare {wanted}"
            )
            continue
        ok, err = types_
        if not types_match(ok, upstream) or not types_match(err, TaskError):
            build.add(
                f"{build.where(i)}: parameter {name!r} is {label(param.annotation)} but node "
                f"{build.ids[build.index[src]]!r} returns TaskResult[{label(upstream)}, "
                f"TaskError]; declare {wanted} or read another node"
            )


def _check_engine_params(build: _Build, i: int, node: TaskNode[Any]) -> None:
    where, task = build.where(i), node.task
    if node.workflow_ctx_from and "workflow_ctx" not in task.params:
        build.add(
            f"{where}: workflow_ctx_from is set but task {task.name!r} has no workflow_ctx "
            "parameter; add `workflow_ctx: WorkflowContext | None = None` to it"
        )
    for name, cls in ENGINE_PARAMS.items():
        if name in task.params and not engine_param_ok(task, name, cls):
            build.add(
                f"{where}: task {task.name!r} declares {name!r} as "
                f"{label(task.params[name].annotation)}; declare "
                f"`{name}: {cls.__name__} | None = None`"
            )


def _check_task_options(build: _Build, i: int, node: TaskNode[Any]) -> None:
    where = build.where(i)
    if node.queue is not None:
        problem = queue_problem(node.queue, horsies_settings())
        if problem:
            build.add(f"{where}: {problem}")
    p = node.priority
    if p is not None and (
        isinstance(p, bool) or not isinstance(p, int) or not PRIORITY_MIN <= p <= PRIORITY_MAX
    ):
        build.add(
            f"{where}: priority={p!r} must be an int from {PRIORITY_MIN} (first) to {PRIORITY_MAX}"
        )


# --------------------------------------------------------------------------- subworkflows


def _check_subworkflow(
    build: _Build, i: int, node: SubWorkflowNode, definition_key: str | None
) -> None:
    where = build.where(i)
    child = child_class(node)
    if child is None:
        build.add(
            f"{where}: subworkflow definition {node.definition!r:.100} is not a registered "
            "WorkflowDefinition (unknown definition_key); import the module that defines it, "
            "or fix the key"
        )
        return
    cycle = definition_cycle(child, [definition_key] if definition_key else [])
    if cycle:
        build.add(
            f"{where}: subworkflow definitions form a cycle: {' contains '.join(cycle)}; a "
            "definition cannot contain itself, directly or through its children"
        )
    kwargs = _fill_params(build, node.kwargs)
    child_params = definition_params(child)
    for name in node.args_from:
        build.add(
            f"{where}: args_from[{name!r}] (or from_node) cannot feed a subworkflow: the child "
            "workflow is built when its parent starts, before upstream results exist; pass "
            "build parameters in kwargs=, and let a task node after the subworkflow combine "
            "its output with the upstream's result"
        )
    for name in [*kwargs, *node.args_from]:
        if name not in child_params:
            build.add(
                f"{where}: {name!r} is not a build parameter of {node.definition_key!r} "
                f"(it has {', '.join(child_params) or 'none'})"
            )
    given = set(kwargs) | set(node.args_from)
    missing = sorted(n for n, d in child_params.items() if d is MISSING and n not in given)
    if missing:
        build.add(
            f"{where}: missing build parameter(s) {', '.join(missing)} of "
            f"{node.definition_key!r}; pass them in kwargs= or args_from="
        )
    build.encoded[i] = _encode(build, where, kwargs, {})


# --------------------------------------------------------------------------- the graph


def _edges(build: _Build) -> list[list[int]]:
    return [
        sorted({j for d in node.waits_for if (j := build.index_of(d)) is not None})
        for node in build.nodes
    ]


def _check_graph(build: _Build) -> None:
    edges = _edges(build)
    if all(edges):
        build.add(
            "the workflow has no root: every node waits for another; at least one node must "
            "have an empty waits_for"
        )
    for component in cycles(edges):
        names = " -> ".join(build.ids[i] for i in [*component, component[0]])
        build.add(f"nodes form a cycle: {names}; remove one of these waits_for edges")


# --------------------------------------------------------------------------- workflow options


def _resolve(build: _Build, ref: object, what: str) -> int | None:
    if isinstance(ref, str):
        if ref in build.ids:
            return build.ids.index(ref)
        build.add(f"{what} names node id {ref!r}, which is not in the workflow ({_ids(build)})")
        return None
    j = build.index_of(ref)
    if j is None:
        build.add(f"{what} names {_unknown(ref)}; {_fix_unknown(build)}")
    return j


def _ids(build: _Build) -> str:
    return ", ".join(build.ids[:20]) + (", ..." if len(build.ids) > 20 else "")


def _check_output(build: _Build, output: object, out_type: Any) -> int | None:
    if output is None:
        return None
    j = _resolve(build, output, "output")
    if j is None:
        return None
    actual = ok_type_of(build.nodes[j])
    if not types_match(out_type, actual):
        build.add(
            f"output node {build.ids[j]!r} returns {label(actual)}, but the definition "
            f"declares WorkflowDefinition[{label(out_type)}]; make them agree"
        )
    return j


def _check_policy(
    build: _Build, policy: object
) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]] | None:
    if policy is None:
        return None
    if not isinstance(policy, SuccessPolicy):
        build.add(f"success_policy must be a SuccessPolicy, not {type(policy).__name__}")
        return None
    if not policy.cases:
        build.add("success_policy has no cases: give at least one SuccessCase(required=[...])")
    cases = []
    for n, case in enumerate(policy.cases):
        if not case.required:
            build.add(f"success_policy case {n} requires no node: list at least one")
        cases.append(_indices(build, case.required, f"success_policy case {n}"))
    optional = _indices(build, policy.optional, "success_policy optional")
    return tuple(cases), optional


def _indices(build: _Build, refs: Iterable[NodeRef], what: str) -> tuple[int, ...]:
    found = (_resolve(build, ref, what) for ref in refs)
    return tuple(sorted({j for j in found if j is not None}))


def _check_params(build: _Build, declared: Mapping[str, Any]) -> None:
    for name in sorted(set(build.params) - set(declared)):
        build.add(
            f"build_with({name}=...) is not a parameter of this workflow "
            f"(it has {', '.join(declared) or 'none'})"
        )
    for name in sorted(build.used_params):
        if name not in build.params and declared.get(name, MISSING) is MISSING:
            build.add(f"parameter {name!r} has no default: build with build_with({name}=...)")


# --------------------------------------------------------------------------- flattening


def _flatten(build: _Build, i: int) -> NodeSpec:
    node = build.nodes[i]
    common: dict[str, Any] = {
        "index": i,
        "node_id": build.ids[i],
        "waits_for": tuple(build.index[d] for d in node.waits_for),
        "args_from": tuple((name, build.index[src]) for name, src in node.args_from.items()),
        "join": cast(Join, node.join),
        "min_success": node.min_success,
        "allow_failed_deps": bool(node.allow_failed_deps),
        "good_until": node.good_until,
    }
    if isinstance(node, TaskNode):
        task = node.task
        return NodeSpec(
            kind="task",
            task_name=task.name,
            queue_name=node.queue or task.queue_name,
            priority=DEFAULT_PRIORITY if node.priority is None else node.priority,
            kwargs_json=build.encoded[i],
            workflow_ctx_from=tuple(build.index[n] for n in node.workflow_ctx_from),
            wants_ctx="workflow_ctx" in task.params,
            wants_meta="workflow_meta" in task.params,
            sub_definition_key=None,
            sub_kwargs_json=None,
            **common,
        )
    return NodeSpec(
        kind="subworkflow",
        task_name=None,
        queue_name=None,
        priority=None,
        kwargs_json=None,
        workflow_ctx_from=(),
        wants_ctx=False,
        wants_meta=False,
        sub_definition_key=node.definition_key,
        sub_kwargs_json=build.encoded[i],
        **common,
    )
