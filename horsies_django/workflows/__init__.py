"""Workflows: DAGs of task nodes started as one unit (authoring here; see docs/workflows.md)."""

from horsies_django.workflows import spec as _spec
from horsies_django.workflows import starting as _starting
from horsies_django.workflows.context import SubWorkflowSummary, WorkflowContext, WorkflowMeta
from horsies_django.workflows.definition import WorkflowDefinition
from horsies_django.workflows.handle import WorkflowHandle, WorkflowTaskInfo
from horsies_django.workflows.spec import (
    NodeSpec,
    OnError,
    SubWorkflowNode,
    SuccessCase,
    SuccessPolicy,
    TaskNode,
    WorkflowSpec,
    from_node,
    param,
)
from horsies_django.workflows.starting import WorkflowStartError
from horsies_django.workflows.validation import build_spec

_spec.install_starter(_starting)

__all__ = [
    "NodeSpec",
    "OnError",
    "SubWorkflowNode",
    "SubWorkflowSummary",
    "SuccessCase",
    "SuccessPolicy",
    "TaskNode",
    "WorkflowContext",
    "WorkflowDefinition",
    "WorkflowHandle",
    "WorkflowMeta",
    "WorkflowSpec",
    "WorkflowStartError",
    "WorkflowTaskInfo",
    "build_spec",
    "from_node",
    "param",
]
