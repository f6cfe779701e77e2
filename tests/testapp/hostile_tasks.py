"""Tasks for the hostile-input and result-limit tests (workers load them via TASK_MODULES)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel

from horsies_django import TaskError, TaskResult, app


class Reading(BaseModel):
    sensor: str
    value: float
    tags: list[str]


@dataclasses.dataclass
class Sample:
    label: str
    counts: list[int]


@app.task("tests.hostile.echo_any")
def echo_any(*, value: Any) -> TaskResult[Any, TaskError]:
    """Return the argument as received (models and dataclasses rebuilt as their classes)."""
    return TaskResult(ok=value)


@app.task("tests.hostile.big_result")
def big_result(*, megabytes: int) -> TaskResult[str, TaskError]:
    """A result of `megabytes` MiB of JSON text."""
    return TaskResult(ok="x" * (megabytes * 1024 * 1024))


@app.task("tests.hostile.big_error")
def big_error(*, megabytes: int) -> TaskResult[str, TaskError]:
    """A domain error whose message is `megabytes` MiB long."""
    return TaskResult(err=TaskError(error_code="TOO_CHATTY", message="e" * (megabytes << 20)))


@app.task("tests.hostile.raise_chars")
def raise_chars(*, codepoint: int, repeat: int = 1) -> TaskResult[str, TaskError]:
    """Raise an exception whose message is one character repeated (NUL or a lone surrogate
    included: what PostgreSQL cannot store)."""
    raise ValueError(chr(codepoint) * repeat)
