"""A task for the admin's end-to-end test: fails on its first run, succeeds once re-enqueued."""

from __future__ import annotations

from pathlib import Path

from horsies_django import TaskError, TaskResult, app


@app.task("tests.flaky_once")
def flaky_once(*, marker: str) -> TaskResult[str, TaskError]:
    """Fail (and leave a marker file) the first time; succeed when the marker exists."""
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once\n")
        raise RuntimeError(f"first run: created {path.name}, run me again")
    return TaskResult(ok="second time lucky")
