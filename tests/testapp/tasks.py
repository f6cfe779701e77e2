"""Tasks used by horsies_django's own tests."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from pydantic import BaseModel

from horsies_django import JsonValue, RetryPolicy, TaskError, TaskResult, app


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


def _bump(path: str) -> int:
    """Count calls across processes with a file (one line per call)."""
    with open(path, "a+") as fh:
        fh.write("x\n")
        fh.seek(0)
        return len(fh.read().splitlines())


@app.task(
    "tests.flaky",
    retry_policy=RetryPolicy.fixed([1, 1, 1], auto_retry_for=["TIMEOUT"], jitter=False),
)
def flaky(*, counter: str, failures: int) -> TaskResult[int, TaskError]:
    """Fails with TIMEOUT `failures` times, then succeeds with the call number."""
    calls = _bump(counter)
    if calls <= failures:
        return TaskResult(err=TaskError(error_code="TIMEOUT", message=f"call {calls} timed out"))
    return TaskResult(ok=calls)


@app.task(
    "tests.mapped",
    retry_policy=RetryPolicy.fixed([1], auto_retry_for=["CONN_LOST"], jitter=False),
    exception_mapper={ConnectionError: "CONN_LOST"},
)
def mapped(*, counter: str) -> TaskResult[str, TaskError]:
    """Raises ConnectionError on the first call (mapped to a retryable code), then succeeds."""
    if _bump(counter) == 1:
        raise ConnectionError("link down")
    return TaskResult(ok="reconnected")


@app.task("tests.defaulted", default_unhandled_error_code="TASK_DEFAULT_CODE")
def defaulted(*, kind: str) -> TaskResult[str, TaskError]:
    """Raises the exception named by `kind`: KeyError (global mapper) or RuntimeError."""
    if kind == "key":
        raise KeyError("k")
    raise RuntimeError("r")


@app.task(
    "tests.unhandled_retry",
    retry_policy=RetryPolicy.exponential(
        1, max_retries=2, auto_retry_for=["UNHANDLED_EXCEPTION"], jitter=False
    ),
)
def unhandled_retry(*, counter: str) -> TaskResult[str, TaskError]:
    _bump(counter)
    raise ValueError("always")


@app.task("tests.hang", timeout_ms=1_500)
def hang(*, marker: str = "") -> TaskResult[str, TaskError]:
    if marker:
        _bump(marker)
    time.sleep(3600)
    return TaskResult(ok="never")


@app.task(
    "tests.hang_retry",
    timeout_ms=1_000,
    retry_policy=RetryPolicy.fixed([1], auto_retry_for=["TASK_TIMEOUT"], jitter=False),
)
def hang_retry(*, counter: str) -> TaskResult[str, TaskError]:
    if _bump(counter) == 1:
        time.sleep(3600)
    return TaskResult(ok="second time lucky")


@app.task("tests.bad_return")
def bad_return() -> TaskResult[int, TaskError]:
    return TaskResult(ok="not an int")  # type: ignore[arg-type]


@app.task("tests.exit_child")
def exit_child(*, marker: str) -> TaskResult[str, TaskError]:
    _bump(marker)
    os._exit(3)


@app.task(
    "tests.flaky_slow_retry",
    retry_policy=RetryPolicy.fixed([30], auto_retry_for=["TIMEOUT"], jitter=False),
)
def flaky_slow_retry(*, counter: str) -> TaskResult[int, TaskError]:
    """Fails with TIMEOUT once; its retry would wait 30 s."""
    calls = _bump(counter)
    if calls <= 1:
        return TaskResult(err=TaskError(error_code="TIMEOUT", message="timed out"))
    return TaskResult(ok=calls)


@app.task("tests.gate")
def gate(*, release: str, marker: str = "", limit_s: float = 120.0) -> TaskResult[str, TaskError]:
    """Hold this child until the file `release` exists (a test's switch, not a timer); a
    `marker` file gets one line when the task's code starts."""
    if marker:
        _bump(marker)
    deadline = time.monotonic() + limit_s
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the switch, bounded by limit_s
    return TaskResult(ok="released")


from tests.testapp import admin_tasks  # noqa: E402, F401  (tasks used by the admin tests)

# --------------------------------------------------------------------------- for other languages


class RustOrder(BaseModel):
    """What the Rust client's `OrderInput` serde struct arrives as."""

    id: int
    items: list[str]
    metadata: dict[str, JsonValue]


@app.task("rust.echo_order")
def echo_order(*, order: RustOrder) -> TaskResult[str, TaskError]:
    assert isinstance(order, RustOrder), type(order)
    return TaskResult(ok=f"order {order.id}: {len(order.items)} items")


@app.task("rust.fail")
def rust_fail(*, code: str) -> TaskResult[str, TaskError]:
    return TaskResult(err=TaskError(error_code=code, message=f"failed with {code}"))


@app.task("rust.boom")
def rust_boom() -> TaskResult[str, TaskError]:
    raise RuntimeError("rust.boom raised")


# The workflow tests' tasks, so that the workers the tests start can run them too.
from tests.testapp import workflow_tasks as _workflow_tasks  # noqa: E402, F401
