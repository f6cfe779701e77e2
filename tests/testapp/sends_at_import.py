"""A task module that sends at import time: discovery must suppress every send.

Loaded only by tests/test_registry.py through `registry.autodiscover()` with
`HORSIES["TASK_MODULES"]` pointing here; the Results are kept for the test to inspect.
"""

from __future__ import annotations

from typing import Any

from horsies_django import TaskError, TaskResult, TaskSendError, app
from horsies_django.handles import TaskHandle
from horsies_django.types import Result
from tests.testapp.tasks import add, noop


@app.task("tests.sends_at_import.defined")
def defined_here(*, n: int) -> TaskResult[int, TaskError]:
    return TaskResult(ok=n)


SEND_RESULT: Result[TaskHandle[Any], TaskSendError] = add.send(a=1, b=2)
SCHEDULE_RESULT: Result[TaskHandle[Any], TaskSendError] = add.schedule(5, a=1, b=2)
OWN_SEND_RESULT: Result[TaskHandle[Any], TaskSendError] = defined_here.send(n=1)
MANY_RESULT: list[Result[TaskHandle[Any], TaskSendError]] = noop.send_many([{"i": 1}, {"i": 2}])
