"""What the demo sends, what each send must end as, and how far along each one is.

Every task is sent with an expectation (final status, error code, number of attempts), so the
demo can tell a working queue from a broken one and exit non-zero on the latter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from horsies_django import (
    TASK_TERMINAL_STATES,
    Err,
    Ok,
    TaskHandle,
    TaskInfo,
    TaskSendResult,
    TaskStatus,
)
from orders.schemas import Order
from orders.tasks import (
    charge_payment,
    generate_invoice,
    notify_warehouse,
    process_order,
    send_receipt,
    validate_order,
)

SCHEDULE_DELAY_S = 3


@dataclass(frozen=True, slots=True)
class Expectation:
    """How a demo task must end."""

    status: TaskStatus
    attempts: int = 1
    error_code: str | None = None
    min_delay_s: float = 0.0  # from send to start


@dataclass(slots=True)
class DemoTask:
    """One sent task, its expectation and the latest `TaskInfo` read for it."""

    label: str
    handle: TaskHandle[Any]
    expected: Expectation
    info: TaskInfo | None = None
    read_error: str | None = None

    @property
    def status(self) -> TaskStatus | None:
        return None if self.info is None else self.info.status

    @property
    def finished(self) -> bool:
        return self.status in TASK_TERMINAL_STATES

    @property
    def attempts(self) -> int:
        return len(self.info.attempts or []) if self.info is not None else 0

    def refresh(self) -> bool:
        """Re-read the task (with result and attempts); True if its status or attempts changed."""
        before = (self.status, self.attempts)
        match self.handle.info(include_result=True, include_attempts=True):
            case Ok(info):
                self.info, self.read_error = info, None
            case Err(error):
                self.read_error = f"{error.code}: {error.message}"
        return (self.status, self.attempts) != before

    def problem(self) -> str | None:
        """How the task differs from its expectation (None when it is as expected)."""
        info, want = self.info, self.expected
        if info is None:
            return self.read_error or "task not found"
        if info.status != want.status:
            return f"status {info.status}, expected {want.status}"
        if want.error_code is not None and info.error_code != want.error_code:
            return f"error code {info.error_code}, expected {want.error_code}"
        if self.attempts != want.attempts:
            return f"{self.attempts} attempt(s), expected {want.attempts}"
        delay = start_delay(info)
        if want.min_delay_s and (delay is None or delay < want.min_delay_s - 0.05):
            return f"started {delay} s after the send, expected at least {want.min_delay_s} s"
        return None


def start_delay(info: TaskInfo) -> float | None:
    """Seconds from the send to the first attempt's start."""
    attempts = info.attempts or []
    first = attempts[-1].started_at if attempts else info.started_at
    if first is None:
        return None
    return round((first - info.sent_at) / timedelta(seconds=1), 2)


def _sent(label: str, result: TaskSendResult[TaskHandle[Any]], expected: Expectation) -> DemoTask:
    match result:
        case Ok(handle):
            return DemoTask(label, handle, expected)
        case Err(error):
            raise SendError(f"could not send {label!r}: {error.code}: {error.message}")


class SendError(Exception):
    """A demo send returned Err (e.g. the database is unreachable)."""


def send_all(run_key: str) -> list[DemoTask]:
    """Send the demo's mix of tasks; `run_key` keeps this run's counters apart from earlier runs."""
    good = Order(
        order_id="A-1001",
        customer_email="ada@example.com",
        items=["keyboard", "mouse"],
        shipping_address="1 Analytical Engine Way, London",
        shipping_method="express",
    )
    empty = good.model_copy(update={"order_id": "A-1002", "items": []})
    return [
        _sent(
            "validate a good order (pydantic in/out)",
            validate_order.send(order=good),
            Expectation(TaskStatus.COMPLETED),
        ),
        _sent(
            "validate an empty order",
            validate_order.send(order=empty),
            Expectation(TaskStatus.FAILED, error_code="EMPTY_ORDER"),
        ),
        _sent(
            "process order 1001",
            process_order.send(order_id=1001),
            Expectation(TaskStatus.COMPLETED),
        ),
        _sent(
            "charge over the card limit",
            charge_payment.send(order_id=1001, amount_cents=120_000),
            Expectation(TaskStatus.FAILED, error_code="PAYMENT_DECLINED"),
        ),
        _sent(
            "generate invoice (raises KeyError)",
            generate_invoice.send(order_id=1001),
            Expectation(TaskStatus.FAILED, error_code="UNHANDLED_EXCEPTION"),
        ),
        _sent(
            "notify warehouse (flaky, retried)",
            notify_warehouse.send(order_id=1001, run_key=run_key, fail_times=2),
            Expectation(TaskStatus.COMPLETED, attempts=3),
        ),
        _sent(
            f"send receipt in {SCHEDULE_DELAY_S} s (scheduled)",
            send_receipt.schedule(SCHEDULE_DELAY_S, order_id=1001, email=good.customer_email),
            Expectation(TaskStatus.COMPLETED, min_delay_s=SCHEDULE_DELAY_S),
        ),
    ]
