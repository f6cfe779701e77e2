"""What the validation rules read from annotations, definition classes and the graph.

Pure helpers: they never report; `validation` turns what they find into problems.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from horsies_django import codec
from horsies_django.definitions import TaskDefinition
from horsies_django.types import TaskResult
from horsies_django.workflows.spec import (
    MISSING,
    Node,
    SubWorkflowNode,
    TaskNode,
    WorkflowParam,
    declared_nodes,
    definition_for,
)


def without_none(annotation: Any) -> tuple[Any, bool]:
    """(annotation without None, whether None was in it)."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return annotation, annotation is type(None)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    had_none = len(args) != len(typing.get_args(annotation))
    if len(args) == 1:
        return args[0], had_none
    return typing.Union[tuple(args)], had_none  # noqa: UP007 - built from a tuple


def result_types(annotation: Any) -> tuple[Any, Any] | None:
    """(T, E) of `TaskResult[T, E]` (or `... | None`), or None for another annotation."""
    bare, _ = without_none(annotation)
    if bare is TaskResult:
        return Any, Any
    if typing.get_origin(bare) is not TaskResult:
        return None
    args = typing.get_args(bare)
    return (args[0], args[1]) if len(args) == 2 else (Any, Any)


def types_match(expected: Any, actual: Any) -> bool:
    """Annotation equality, with Any on either side matching anything."""
    return expected is Any or actual is Any or expected == actual


def ok_type_of(node: Node) -> Any:
    """The `T` a node's result carries: its task's ok type, or its child's declared OutT."""
    if isinstance(node, TaskNode):
        return node.task.ok_type
    child = child_class(node)
    return getattr(child, "out_type", Any) if child is not None else Any


def label(annotation: Any) -> str:
    return codec.type_label(annotation).replace("horsies_django.types.", "")


def engine_param_ok(task: TaskDefinition, name: str, cls: type) -> bool:
    bare, had_none = without_none(task.params[name].annotation)
    default = inspect.signature(task.fn).parameters[name].default
    return bare is cls and had_none and default is None


def child_class(node: SubWorkflowNode) -> type[Any] | None:
    if isinstance(node.definition, str):
        return definition_for(node.definition)
    key = node.definition_key
    return node.definition if key is not None and definition_for(key) is node.definition else None


def definition_params(cls: type) -> dict[str, Any]:
    """The `param()` placeholders of a definition class's nodes: name -> default (or MISSING)."""
    found: dict[str, Any] = {}
    for _, node in declared_nodes(cls):
        for value in node.kwargs.values():
            if isinstance(value, WorkflowParam) and found.get(value.name, MISSING) is MISSING:
                found[value.name] = value.default
    return found


def definition_cycle(child: type[Any], path: list[str]) -> list[str] | None:
    key = str(getattr(child, "definition_key", "?"))
    if key in path:
        return [*path[path.index(key) :], key]
    for _, node in declared_nodes(child):
        if isinstance(node, SubWorkflowNode):
            grandchild = child_class(node)
            if grandchild is not None:
                cycle = definition_cycle(grandchild, [*path, key])
                if cycle:
                    return cycle
    return None


def cycles(edges: list[list[int]]) -> list[list[int]]:
    """Strongly connected components that hold a cycle (Tarjan), each in index order."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    found: list[list[int]] = []

    def visit(v: int) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges[v]:
                found.append(sorted(component))

    for v in range(len(edges)):
        if v not in index:
            visit(v)
    return sorted(found)
