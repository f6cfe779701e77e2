"""Extra tasks for the worker and results tests."""

from __future__ import annotations

import os

from horsies_django import TaskError, TaskResult, app


@app.task("tests.whoami")
def whoami() -> TaskResult[int, TaskError]:
    """The pid of the process that ran the task."""
    return TaskResult(ok=os.getpid())
