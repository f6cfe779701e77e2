"""The harness's no-op task taking one integer (its `django.tasks` twin is in dj_tasks.py)."""

from horsies_django import TaskError, TaskResult, app


@app.task("bench.noop")
def noop(*, i: int) -> TaskResult[None, TaskError]:
    return TaskResult(ok=None)
