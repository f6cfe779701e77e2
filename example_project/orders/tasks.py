"""The example project's tasks: one per behaviour worth seeing in the demo.

Every task takes keyword-only arguments and returns `TaskResult[T, TaskError]`; expected
failures are returned as domain errors, anything raised becomes `UNHANDLED_EXCEPTION`.
`reserve_stock` and `ship_order` are nodes of the checkout workflow (`orders/workflows.py`):
a parameter typed `TaskResult[T, TaskError]` receives an upstream node's result.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from horsies_django import RetryPolicy, TaskError, TaskResult, app
from orders.models import DemoCounter
from orders.schemas import Order, ValidatedOrder

CARD_LIMIT_CENTS = 50_000


@app.task("validate_order", queue_name="critical")
def validate_order(*, order: Order) -> TaskResult[ValidatedOrder, TaskError]:
    """Check an order; a pydantic model in, a pydantic model out."""
    if not order.order_id.strip():
        return TaskResult(
            err=TaskError(error_code="INVALID_ORDER_ID", message="Order ID is required")
        )
    if not order.items:
        return TaskResult(
            err=TaskError(error_code="EMPTY_ORDER", message="Order must contain at least one item")
        )
    validated = ValidatedOrder(
        order_id=order.order_id,
        customer_email=order.customer_email,
        items=order.items,
        shipping_address=order.shipping_address,
        shipping_method=order.shipping_method,
        validated_at=datetime.now(UTC),
    )
    return TaskResult(ok=validated)


@app.task("process_order", queue_name="standard")
def process_order(*, order_id: int) -> TaskResult[str, TaskError]:
    """The plainest task: JSON in, a string out."""
    return TaskResult(ok=f"Order {order_id} processed")


@app.task("charge_payment", queue_name="critical")
def charge_payment(*, order_id: int, amount_cents: int) -> TaskResult[str, TaskError]:
    """A domain error with data: the card is declined above a limit (no retry: it won't help)."""
    if amount_cents > CARD_LIMIT_CENTS:
        return TaskResult(
            err=TaskError(
                error_code="PAYMENT_DECLINED",
                message=f"Card declined for order {order_id}: amount over the limit",
                data={"amount_cents": amount_cents, "limit_cents": CARD_LIMIT_CENTS},
            )
        )
    return TaskResult(ok=f"Charged {amount_cents} cents for order {order_id}")


@app.task("generate_invoice", queue_name="standard")
def generate_invoice(*, order_id: int) -> TaskResult[str, TaskError]:
    """A bug: the exception is caught by the worker and becomes UNHANDLED_EXCEPTION."""
    totals: dict[int, int] = {}
    return TaskResult(ok=f"Invoice for order {order_id}: {totals[order_id]} cents")


@app.task(
    "notify_warehouse",
    queue_name="standard",
    retry_policy=RetryPolicy.fixed([1, 1], auto_retry_for=["TEMPORARY_OUTAGE"], jitter=False),
)
def notify_warehouse(
    *, order_id: int, run_key: str, fail_times: int = 2
) -> TaskResult[str, TaskError]:
    """Flaky: the first `fail_times` calls for `run_key` fail with a retryable code.

    A task cannot see its attempt number, so the calls are counted in the database
    (`DemoCounter`), which every worker process shares.
    """
    calls = DemoCounter.increment(f"{run_key}:notify_warehouse")
    if calls <= fail_times:
        return TaskResult(
            err=TaskError(
                error_code="TEMPORARY_OUTAGE",
                message=f"Warehouse API unavailable (call {calls}); will retry",
            )
        )
    return TaskResult(ok=f"Warehouse notified of order {order_id} on call {calls}")


@app.task("send_receipt", queue_name="standard")
def send_receipt(*, order_id: int, email: str) -> TaskResult[str, TaskError]:
    """Sent with `schedule(3, ...)`: it becomes claimable three seconds after the send."""
    return TaskResult(ok=f"Receipt for order {order_id} sent to {email}")


@app.task("reserve_stock", queue_name="standard")
def reserve_stock(
    *, order: TaskResult[ValidatedOrder, TaskError], warehouse_delay_s: float = 0.0
) -> TaskResult[str, TaskError]:
    """A workflow node fed by `validate_order`: reserves the validated order's items.

    `warehouse_delay_s` stands for a slow warehouse API (the demo uses it so that the workflow
    is seen half done)."""
    if order.is_err():
        return TaskResult(err=TaskError(error_code="NOT_VALIDATED", message="no valid order"))
    time.sleep(warehouse_delay_s)
    return TaskResult(ok=f"{len(order.unwrap().items)} item(s) reserved")


@app.task("ship_order", queue_name="standard")
def ship_order(
    *,
    order: TaskResult[ValidatedOrder, TaskError],
    payment: TaskResult[str, TaskError],
    reservation: TaskResult[str, TaskError],
) -> TaskResult[str, TaskError]:
    """The workflow's last node: runs once the payment and the reservation both succeeded."""
    for upstream in (order, payment, reservation):
        if upstream.is_err():
            return TaskResult(
                err=TaskError(error_code="NOT_SHIPPABLE", message="an earlier step failed")
            )
    validated = order.unwrap()
    return TaskResult(
        ok=f"Order {validated.order_id} shipped {validated.shipping_method} "
        f"({reservation.unwrap()}; payment: {payment.unwrap()})"
    )
