"""The benchmark's tasks: no-ops, so the figures measure the queue, not the work."""

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
