"""Tasks on CUSTOM queues; imported only under tests.test_queues.CUSTOM settings."""

from __future__ import annotations

import time

from horsies_django import TaskError, TaskResult, app


def _log(path: str, token: str) -> None:
    with open(path, "a") as fh:
        fh.write(token + "\n")


@app.task("queues.high", queue_name="high")
def high(*, path: str, token: str) -> TaskResult[str, TaskError]:
    _log(path, token)
    return TaskResult(ok=token)


@app.task("queues.normal", queue_name="normal")
def normal(*, path: str, token: str) -> TaskResult[str, TaskError]:
    _log(path, token)
    return TaskResult(ok=token)


@app.task("queues.low", queue_name="low")
def low(*, path: str, token: str) -> TaskResult[str, TaskError]:
    _log(path, token)
    return TaskResult(ok=token)


@app.task("queues.capped", queue_name="capped")
def capped(*, seconds: float) -> TaskResult[str, TaskError]:
    time.sleep(seconds)
    return TaskResult(ok="done")


@app.task("queues.paused", queue_name="paused")
def paused(*, token: str) -> TaskResult[str, TaskError]:
    return TaskResult(ok=token)
