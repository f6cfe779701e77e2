"""Class-style workflows: `class Checkout(WorkflowDefinition[Receipt])`.

Nodes are class attributes (a node's id is its attribute name) and every subclass is registered
by its globally unique `definition_key`, so a subworkflow node, and a worker advancing one, finds
the child definition by key. `build()` / `build_with()` check every rule and return a fresh spec.
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar

from horsies_django.exceptions import WorkflowValidationError
from horsies_django.workflows.introspect import definition_params
from horsies_django.workflows.spec import (
    OnError,
    WorkflowSpec,
    declared_nodes,
    definition_table,
)
from horsies_django.workflows.validation import build_spec


class WorkflowDefinition[OutT]:
    """Base of class-style workflows; `OutT` is the ok type of `Meta.output`'s result.

    ```
    class Checkout(WorkflowDefinition[str]):
        definition_key = "shop.checkout"
        reserve = reserve_stock.node()(order_id=param("order_id"))
        charge = charge_card.node()(reservation=from_node(reserve))

        class Meta:
            output = "charge"  # a node id (class bodies do not see each other's names)
            on_error = OnError.FAIL
            success_policy = None
    ```
    """

    definition_key: ClassVar[str]
    out_type: ClassVar[Any] = Any  # OutT, read from the class's generic base

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = _declared_out_type(cls)
        if declared is not None:
            cls.out_type = declared
        key = cls.__dict__.get("definition_key")
        if not isinstance(key, str) or not key.strip():
            raise WorkflowValidationError(
                cls.__qualname__,
                [f"{cls.__qualname__} has no definition_key: add definition_key = 'app.name'"],
            )
        existing = definition_table.get(key)
        if existing is not None and _origin(existing) != _origin(cls):
            raise WorkflowValidationError(
                key,
                [
                    f"definition_key {key!r} is already used by {_origin(existing)}; "
                    f"{_origin(cls)} must use another key"
                ],
            )
        definition_table[key] = cls

    @classmethod
    def build(cls) -> WorkflowSpec:
        """A fresh, validated spec of this workflow (its parameters take their defaults)."""
        return cls.build_with()

    @classmethod
    def build_with(cls, **params: Any) -> WorkflowSpec:
        """A fresh, validated spec with `param()` placeholders filled from `params`."""
        meta = getattr(cls, "Meta", None)
        return build_spec(
            str(getattr(meta, "name", None) or cls.__name__),
            list(declared_nodes(cls)),
            output=getattr(meta, "output", None),
            on_error=getattr(meta, "on_error", OnError.FAIL),
            success_policy=getattr(meta, "success_policy", None),
            definition_key=cls.definition_key,
            out_type=cls.out_type,
            params=params,
            declared_params=definition_params(cls),
        )


def definition_for(key: str) -> type[WorkflowDefinition[Any]] | None:
    """The WorkflowDefinition subclass registered under `key`, if any (subworkflows' children)."""
    cls = definition_table.get(key)
    return cls if isinstance(cls, type) and issubclass(cls, WorkflowDefinition) else None


def _declared_out_type(cls: type) -> Any | None:
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = typing.get_origin(base)
        if isinstance(origin, type) and issubclass(origin, WorkflowDefinition):
            args = typing.get_args(base)
            return args[0] if args else Any
    return None


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
