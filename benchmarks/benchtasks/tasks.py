"""The benchmark's only task: a no-op, so the figures measure the queue, not the work."""

from horsies_django import TaskError, TaskResult, app


@app.task("bench.noop")
def noop(*, i: int) -> TaskResult[None, TaskError]:
    return TaskResult(ok=None)
