"""Tasks for the fault-injection suite (loaded by workers through tests.faults.settings)."""

from __future__ import annotations

import os
import time

from horsies_django import RetryPolicy, TaskError, TaskResult, app

CRASH_RETRY = RetryPolicy.fixed([1, 1, 1], auto_retry_for=["WORKER_CRASHED"], jitter=False)

_hoard: list[bytes] = []  # memory a task keeps alive in its child, on purpose


def _mark(marker: str) -> None:
    if marker:
        with open(marker, "a") as fh:
            fh.write(f"{os.getpid()}\n")


@app.task("faults.sleep_retry", retry_policy=CRASH_RETRY)
def sleep_retry(*, seconds: float, marker: str = "") -> TaskResult[int, TaskError]:
    """Sleep, then return the pid that ran it; a crashed run is retried."""
    _mark(marker)
    time.sleep(seconds)
    return TaskResult(ok=os.getpid())


@app.task("faults.hold_retry", retry_policy=CRASH_RETRY)
def hold_retry(*, release: str, marker: str = "") -> TaskResult[int, TaskError]:
    """Hold this child until the file `release` exists, then return the pid that ran it; a
    crashed run is retried (and does not wait once `release` exists)."""
    _mark(marker)
    while not os.path.exists(release):
        time.sleep(0.02)  # polling interval of the wait for the test's release file
    return TaskResult(ok=os.getpid())


@app.task("faults.work", retry_policy=CRASH_RETRY)
def work(*, i: int, seconds: float = 0.0, path: str = "") -> TaskResult[int, TaskError]:
    """A short unit of work: optionally append `i` to `path` (to count executions)."""
    if path:
        with open(path, "a") as fh:
            fh.write(f"{i}\n")
    if seconds:
        time.sleep(seconds)
    return TaskResult(ok=i)


@app.task("faults.once")
def once(*, i: int, path: str) -> TaskResult[int, TaskError]:
    """Append `i` to `path` (a side effect outside the database); no retry policy at all."""
    with open(path, "a") as fh:
        fh.write(f"{i}\n")
    return TaskResult(ok=i)


@app.task("faults.whoami")
def whoami(*, i: int = 0) -> TaskResult[int, TaskError]:
    """The pid of the child that ran the task."""
    return TaskResult(ok=os.getpid())


@app.task("faults.hog")
def hog(*, megabytes: int) -> TaskResult[int, TaskError]:
    """Keep `megabytes` MB alive in this child (a leak), and return the child's pid."""
    _hoard.append(os.urandom(1024) * (megabytes * 1024))
    return TaskResult(ok=os.getpid())


@app.task("faults.gate")
def gate(*, release: str, marker: str = "", limit_s: float = 120.0) -> TaskResult[int, TaskError]:
    """Hold this child until the file `release` exists (or `limit_s` passes)."""
    _mark(marker)
    deadline = time.monotonic() + limit_s
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)
    return TaskResult(ok=os.getpid())


@app.task("faults.wf_step", retry_policy=CRASH_RETRY)
def wf_step(*, i: int, seconds: float = 0.002) -> TaskResult[int, TaskError]:
    """A workflow node: a little work, then its number; a crashed run is retried."""
    time.sleep(seconds)
    return TaskResult(ok=i)
