"""How the demo shows its tasks: a live rich table on a terminal, plain lines otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils import timezone
from pydantic import BaseModel
from rich.table import Table
from rich.text import Text

from horsies_django import TaskStatus
from orders.demo.scenario import DemoTask

STATUS_STYLES = {
    TaskStatus.PENDING: "yellow",
    TaskStatus.CLAIMED: "cyan",
    TaskStatus.RUNNING: "bold cyan",
    TaskStatus.COMPLETED: "bold green",
    TaskStatus.FAILED: "bold red",
    TaskStatus.CANCELLED: "magenta",
    TaskStatus.EXPIRED: "magenta",
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
    result = info.result
    if result is not None and result.is_ok():
        return "ok: " + short(result.ok_value)
    if result is not None and result.err is not None:
        return f"{result.err.error_code}: {result.err.message}"
    return info.failed_reason or ""


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
