"""How the demo shows its tasks and its workflow: live rich tables on a terminal, plain lines
otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils import timezone
from pydantic import BaseModel
from rich.console import Group
from rich.table import Table
from rich.text import Text

from horsies_django import TaskError, TaskResult, TaskStatus, WorkflowTaskInfo
from horsies_django.states import NodeStatus, WorkflowStatus
from orders.demo.scenario import DemoTask, DemoWorkflow

STATUS_STYLES = {
    TaskStatus.PENDING: "yellow",
    TaskStatus.CLAIMED: "cyan",
    TaskStatus.RUNNING: "bold cyan",
    TaskStatus.COMPLETED: "bold green",
    TaskStatus.FAILED: "bold red",
    TaskStatus.CANCELLED: "magenta",
    TaskStatus.EXPIRED: "magenta",
}
NODE_STYLES: dict[str, str] = {
    NodeStatus.PENDING: "dim",
    NodeStatus.READY: "yellow",
    NodeStatus.ENQUEUED: "yellow",
    NodeStatus.RUNNING: "bold cyan",
    NodeStatus.COMPLETED: "bold green",
    NodeStatus.FAILED: "bold red",
    NodeStatus.SKIPPED: "magenta",
}
WORKFLOW_STYLES: dict[str, str] = {
    WorkflowStatus.PENDING: "yellow",
    WorkflowStatus.RUNNING: "bold cyan",
    WorkflowStatus.PAUSED: "yellow",
    WorkflowStatus.COMPLETED: "bold green",
    WorkflowStatus.FAILED: "bold red",
    WorkflowStatus.CANCELLED: "magenta",
    WorkflowStatus.EXPIRED: "magenta",
}
MAX_DETAIL = 72


def short(value: Any) -> str:
    """A one-line, bounded rendering of a task's return value."""
    if isinstance(value, BaseModel):
        fields = ", ".join(f"{k}={v!r}" for k, v in list(value.model_dump().items())[:2])
        text = f"{type(value).__name__}({fields}, ...)"
    else:
        text = repr(value)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def detail(task: DemoTask) -> str:
    """What is known about the task beyond its status: result, error, or what it waits for."""
    info = task.info
    if info is None:
        return task.read_error or "not found"
    now = timezone.now()
    if info.status == TaskStatus.PENDING:
        if info.next_retry_at is not None:
            wait = max(0.0, (info.next_retry_at - now).total_seconds())
            last = info.attempts[0] if info.attempts else None
            cause = f" after {last.error_code}" if last is not None and last.error_code else ""
            return f"retry {info.retry_count} in {wait:.1f} s{cause}"
        if info.enqueued_at > now:
            return f"due in {(info.enqueued_at - now).total_seconds():.1f} s"
        return "waiting for a worker"
    if info.status in (TaskStatus.CLAIMED, TaskStatus.RUNNING):
        return "on a worker"
    return outcome(info.result) or info.failed_reason or ""


def outcome(result: TaskResult[Any, TaskError] | None, *, full: bool = False) -> str:
    """`ok: <value>` or `<error code>: <message>` ("" for no result); bounded unless `full`."""
    if result is not None and result.is_ok():
        return "ok: " + (repr(result.ok_value) if full else short(result.ok_value))
    if result is not None and result.err is not None:
        return f"{result.err.error_code}: {result.err.message}"
    return ""


def attempt_history(task: DemoTask) -> str:
    """Each attempt, oldest first: `#1 FAILED TEMPORARY_OUTAGE (retried), #2 COMPLETED`."""
    parts = []
    for attempt in reversed(task.info.attempts or []) if task.info else []:
        code = f" {attempt.error_code}" if attempt.error_code else ""
        retried = " (retried)" if attempt.will_retry else ""
        parts.append(f"#{attempt.attempt} {attempt.outcome}{code}{retried}")
    return ", ".join(parts) or "no attempts"


def status_name(task: DemoTask) -> str:
    return "?" if task.status is None else str(task.status)


def screen(tasks: Sequence[DemoTask], workflow: DemoWorkflow) -> Group:
    """What the live display shows: the tasks' table above the workflow's."""
    return Group(table(tasks, "Tasks"), Text(""), workflow_table(workflow))


def table(tasks: Sequence[DemoTask], title: str) -> Table:
    """The live/final table: one row per demo task."""
    grid = Table(title=title, title_justify="left", expand=False)
    grid.add_column("demo step")
    grid.add_column("task [queue]")
    grid.add_column("status")
    grid.add_column("attempts", justify="right")
    grid.add_column("result / error", overflow="fold")
    for task in tasks:
        info = task.info
        name = f"{info.task_name} [{info.queue_name}]" if info else task.handle.task_id
        style = STATUS_STYLES.get(task.status, "") if task.status else ""
        grid.add_row(
            Text(task.label),
            Text(name),
            Text(status_name(task), style=style),
            Text(str(task.attempts)),
            Text(detail(task)),
        )
    return grid


def plain_line(task: DemoTask, elapsed_s: float) -> str:
    """One progress line for a non-interactive terminal."""
    return (
        f"[{elapsed_s:5.1f}s] {task.label:<42} {status_name(task):<9} "
        f"attempts={task.attempts}  {detail(task)}"
    )


def final_line(task: DemoTask) -> str:
    """The result of one task, as printed after the run."""
    return f"  {task.label:<42} {status_name(task):<9} attempts={task.attempts}  {detail(task)}"


# ----------------------------------------------------------------------------- the workflow


def stages(workflow: DemoWorkflow) -> list[str]:
    """The graph by depth, nodes that may run in parallel together: `charge + reserve`."""
    nodes = workflow.spec.nodes
    depth: dict[int, int] = {}

    def depth_of(i: int) -> int:  # the graph is acyclic: validated when it was built
        if i not in depth:
            depth[i] = 1 + max((depth_of(j) for j in nodes[i].waits_for), default=-1)
        return depth[i]

    by_depth: dict[int, list[str]] = {}
    for node in nodes:
        by_depth.setdefault(depth_of(node.index), []).append(node.node_id)
    return [" + ".join(ids) for _, ids in sorted(by_depth.items())]


def progress(workflow: DemoWorkflow) -> str:
    """`RUNNING, 1/4 nodes done`."""
    status = workflow.status or workflow.read_error or "?"
    return f"{status}, {workflow.done}/{workflow.total} nodes done"


def node_label(workflow: DemoWorkflow, node: WorkflowTaskInfo) -> str:
    """`checkout: ship (ship_order)`."""
    return f"{workflow.name}: {node.node_id} ({node.name})"


def node_detail(workflow: DemoWorkflow, node: WorkflowTaskInfo) -> str:
    """What a node waits for, or its result."""
    match node.status:
        case NodeStatus.PENDING:
            return "waits for " + ", ".join(workflow.waits_for(node.node_id))
        case NodeStatus.READY:
            return "ready: its task is being sent"
        case NodeStatus.ENQUEUED:
            return "waiting for a worker"
        case NodeStatus.RUNNING:
            return "on a worker"
        case NodeStatus.SKIPPED:
            return "skipped: a node it waits for did not complete"
    return outcome(node.result)


def workflow_table(workflow: DemoWorkflow) -> Table:
    """The live/final table of the workflow: one row per node, its progress in the title."""
    status = workflow.status or workflow.read_error or "?"
    title = Text.assemble(
        f"Workflow {workflow.name}: ",
        (status, WORKFLOW_STYLES.get(status, "")),
        f", {workflow.done}/{workflow.total} nodes done",
    )
    grid = Table(title=title, title_justify="left", expand=False)
    grid.add_column("node")
    grid.add_column("task")
    grid.add_column("waits for")
    grid.add_column("status")
    grid.add_column("result / error", overflow="fold")
    for node in workflow.nodes:
        grid.add_row(
            Text(node.node_id),
            Text(node.name or ""),
            Text(", ".join(workflow.waits_for(node.node_id)) or "-"),
            Text(node.status, style=NODE_STYLES.get(node.status, "")),
            Text(node_detail(workflow, node)),
        )
    return grid


def plain_node_line(workflow: DemoWorkflow, node: WorkflowTaskInfo, elapsed_s: float) -> str:
    """One progress line of a node, for a non-interactive terminal."""
    return (
        f"[{elapsed_s:5.1f}s] {node_label(workflow, node):<42} {node.status:<9} "
        f"{node_detail(workflow, node)}"
    )


def plain_workflow_line(workflow: DemoWorkflow, elapsed_s: float) -> str:
    """One progress line of the workflow as a whole, for a non-interactive terminal."""
    return f"[{elapsed_s:5.1f}s] {'workflow ' + workflow.name:<42} {progress(workflow)}"


def final_node_line(workflow: DemoWorkflow, node: WorkflowTaskInfo) -> str:
    """The result of one node, as printed after the run."""
    label = f"{node.node_id} ({node.name})"
    return f"  {label:<42} {node.status:<9} {outcome(node.result)}"


def workflow_summary(workflow: DemoWorkflow) -> str:
    """`Workflow checkout: COMPLETED, 4/4 nodes done`."""
    return f"Workflow {workflow.name}: {progress(workflow)}"


def workflow_output(workflow: DemoWorkflow) -> str:
    """The workflow's output as `get()` returned it, in full."""
    return f"  output: {outcome(workflow.output, full=True) or 'none yet'}"
