"""Extra tasks for the worker and results tests (retries, process identity)."""

from __future__ import annotations

import os
from pathlib import Path

from horsies_django import RetryPolicy, TaskError, TaskResult, app


@app.task(
    "tests.flaky",
    retry_policy=RetryPolicy.fixed([1, 1, 1], auto_retry_for=["FLAKY"], jitter=False),
)
def flaky(*, path: str, failures: int) -> TaskResult[int, TaskError]:
    """Fail with FLAKY `failures` times (counted in a file), then succeed with the run number."""
    counter = Path(path)
    runs = len(counter.read_text().splitlines()) + 1 if counter.exists() else 1
    with counter.open("a") as fh:
        fh.write(f"{os.getpid()}\n")
    if runs <= failures:
        return TaskResult(err=TaskError(error_code="FLAKY", message=f"run {runs} failed"))
    return TaskResult(ok=runs)


@app.task("tests.whoami")
def whoami() -> TaskResult[int, TaskError]:
    """The pid of the process that ran the task."""
    return TaskResult(ok=os.getpid())
