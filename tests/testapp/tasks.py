"""Tasks used by horsies_django's own tests."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from pydantic import BaseModel

from horsies_django import JsonValue, TaskError, TaskResult, app


class Order(BaseModel):
    order_id: int
    items: list[str]


@dataclass
class Point:
    x: int
    y: int


@app.task("tests.add")
def add(*, a: int, b: int) -> TaskResult[int, TaskError]:
    return TaskResult(ok=a + b)


@app.task("tests.noop")
def noop(*, i: int = 0) -> TaskResult[None, TaskError]:
    return TaskResult(ok=None)


@app.task("tests.domain_error")
def domain_error(*, reason: str) -> TaskResult[str, TaskError]:
    return TaskResult(err=TaskError(error_code="OUT_OF_STOCK", message=reason, data={"r": reason}))


@app.task("tests.boom")
def boom() -> TaskResult[str, TaskError]:
    raise ValueError("kaboom")


@app.task("tests.not_a_result")
def not_a_result() -> TaskResult[str, TaskError]:
    return "plain"  # type: ignore[return-value]


@app.task("tests.total_order")
def total_order(*, order: Order) -> TaskResult[Order, TaskError]:
    assert isinstance(order, Order)
    return TaskResult(ok=Order(order_id=order.order_id, items=[*order.items, "checked"]))


@app.task("tests.move")
def move(*, point: Point, dx: int) -> TaskResult[Point, TaskError]:
    assert isinstance(point, Point)
    return TaskResult(ok=Point(point.x + dx, point.y))


@app.task("tests.echo")
def echo(*, value: JsonValue) -> TaskResult[JsonValue, TaskError]:
    return TaskResult(ok=value)


@app.task("tests.sleep")
def sleep_for(*, seconds: float, marker: str = "") -> TaskResult[str, TaskError]:
    if marker:
        with open(marker, "a") as fh:
            fh.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return TaskResult(ok="slept")


@app.task("tests.record")
def record(*, path: str, token: str) -> TaskResult[str, TaskError]:
    """Append a line to a file: a side effect tests can count."""
    with open(path, "a") as fh:
        fh.write(token + "\n")
    return TaskResult(ok=token)
