"""The benchmark's tasks: no-ops, so the figures measure the queue, not the work, and the
workloads of benchmarks/work.py (one per kind of work, the same work as the raw baseline's)."""

from benchmarks.work import wait
from horsies_django import TaskError, TaskResult, app


@app.task("bench.noop")
def noop(*, i: int) -> TaskResult[None, TaskError]:
    return TaskResult(ok=None)


@app.task("bench.step")
def step(
    *, i: int, previous: TaskResult[int, TaskError] | None = None
) -> TaskResult[int, TaskError]:
    """A workflow node: its number (a chain passes the previous node's result in)."""
    return TaskResult(ok=i)


@app.task("bench.orm")
def orm(*, i: int) -> TaskResult[None, TaskError]:
    """The `orm` workload: one user model row through the ORM (benchmarks/work.py)."""
    from django.utils import timezone

    from benchmarks.benchproject.items.models import Item

    Item.objects.create(i=i, created_at=timezone.now())
    return TaskResult(ok=None)


@app.task("bench.io")
def io(*, i: int) -> TaskResult[None, TaskError]:
    """The `io` workload: 10 ms of waiting (benchmarks/work.py)."""
    wait("io", i)
    return TaskResult(ok=None)


@app.task("bench.mixed")
def mixed(*, i: int) -> TaskResult[None, TaskError]:
    """The `mixed` workload: 1 ms, every 20th task 1 s (benchmarks/work.py)."""
    wait("mixed", i)
    return TaskResult(ok=None)
